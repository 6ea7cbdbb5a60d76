"""foundation

Revision ID: 0001_foundation
Revises: 
Create Date: 2026-11-23 09:37:38.667101
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001_foundation'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.Enum('admin', 'case_manager', name='role', native_enum=False, length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash')),
    sa.UniqueConstraint('name', name=op.f('uq_api_keys_name'))
    )
    op.create_table('patients',
    sa.Column('given_name', sa.String(length=200), nullable=True),
    sa.Column('family_name', sa.String(length=200), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('gender', sa.Enum('male', 'female', 'other', 'unknown', name='administrativegender', native_enum=False, length=40), nullable=True),
    sa.Column('fhir_extras', sa.JSON(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_family_name'), ['family_name'], unique=False)

    op.create_table('cases',
    sa.Column('patient_id', sa.String(length=36), nullable=False),
    sa.Column('program', sa.Enum('nursing', 'social_work', 'behavioral_health', 'disability', 'workers_compensation', 'geriatric', 'pediatric', 'transitional_care', name='program', native_enum=False, length=40), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=True),
    sa.Column('manager', sa.String(length=200), nullable=True),
    sa.Column('priority', sa.Enum('routine', 'urgent', 'asap', 'stat', name='priority', native_enum=False, length=40), nullable=False),
    sa.Column('status', sa.Enum('referral', 'intake', 'assessment', 'planning', 'active', 'monitoring', 'transition', 'closed', name='casestatus', native_enum=False, length=40), nullable=False),
    sa.Column('closure_reason', sa.Enum('goals_met', 'patient_declined', 'transferred', 'moved_out_of_area', 'lost_to_follow_up', 'ineligible', 'deceased', 'other', name='closurereason', native_enum=False, length=40), nullable=True),
    sa.Column('closure_note', sa.Text(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fhir_extras', sa.JSON(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_cases_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_manager'), ['manager'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_program'), ['program'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_status'), ['status'], unique=False)

    op.create_table('patient_identifiers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=36), nullable=False),
    sa.Column('system', sa.String(length=500), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_identifiers_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_identifiers')),
    sa.UniqueConstraint('system', 'value', name='uq_patient_identifiers_system_value')
    )
    with op.batch_alter_table('patient_identifiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_identifiers_patient_id'), ['patient_id'], unique=False)

    op.create_table('assessments',
    sa.Column('kind', sa.Enum('initial', 'reassessment', name='assessmentkind', native_enum=False, length=40), nullable=False),
    sa.Column('performed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('performed_by', sa.String(length=200), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('strengths', sa.JSON(), nullable=False),
    sa.Column('preferences', sa.JSON(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_assessments_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments'))
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assessments_case_id'), ['case_id'], unique=False)

    op.create_table('care_team_members',
    sa.Column('role', sa.Enum('patient', 'caregiver', 'case_manager', 'primary_care_physician', 'social_worker', 'nurse', 'behavioral_health_clinician', 'pharmacist', 'community_health_worker', 'specialist', 'other', name='careteamrole', native_enum=False, length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('telecom', sa.String(length=200), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_care_team_members_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_team_members'))
    )
    with op.batch_alter_table('care_team_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_team_members_case_id'), ['case_id'], unique=False)

    op.create_table('case_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=36), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_events_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_events'))
    )
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_events_case_id'), ['case_id'], unique=False)

    op.create_table('check_ins',
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('mode', sa.Enum('phone', 'in_person', 'video', 'message', name='checkinmode', native_enum=False, length=40), nullable=False),
    sa.Column('performed_by', sa.String(length=200), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_check_ins_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_ins'))
    )
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_check_ins_case_id'), ['case_id'], unique=False)

    op.create_table('goals',
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('code', sa.JSON(), nullable=True),
    sa.Column('expressed_by', sa.Enum('patient', 'caregiver', 'case_manager', 'care_team', name='goalexpressedby', native_enum=False, length=40), nullable=True),
    sa.Column('priority', sa.Enum('high', 'medium', 'low', name='goalpriority', native_enum=False, length=40), nullable=True),
    sa.Column('lifecycle_status', sa.Enum('proposed', 'planned', 'accepted', 'active', 'on_hold', 'completed', 'cancelled', 'rejected', name='goallifecycle', native_enum=False, length=40), nullable=False),
    sa.Column('achievement_status', sa.Enum('in_progress', 'improving', 'worsening', 'no_change', 'achieved', 'sustaining', 'not_achieved', 'no_progress', 'not_attainable', name='goalachievement', native_enum=False, length=40), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('target_measure', sa.JSON(), nullable=True),
    sa.Column('target_detail_quantity', sa.Numeric(precision=18, scale=6), nullable=True),
    sa.Column('target_detail_unit', sa.String(length=50), nullable=True),
    sa.Column('target_detail_text', sa.Text(), nullable=True),
    sa.Column('target_due_date', sa.Date(), nullable=True),
    sa.Column('fhir_extras', sa.JSON(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_goals_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goals'))
    )
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_goals_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_goals_target_due_date'), ['target_due_date'], unique=False)

    op.create_table('interventions',
    sa.Column('kind', sa.Enum('referral', 'service', name='interventionkind', native_enum=False, length=40), nullable=False),
    sa.Column('type', sa.Enum('home_health', 'durable_medical_equipment', 'housing_assistance', 'food_assistance', 'transportation_assistance', 'financial_counseling', 'counseling', 'medication_management', 'physical_therapy', 'primary_care_follow_up', 'caregiver_support', 'patient_education', 'care_coordination', 'other', name='interventiontype', native_enum=False, length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('code', sa.JSON(), nullable=True),
    sa.Column('performer_kind', sa.Enum('organization', 'practitioner', name='performerkind', native_enum=False, length=40), nullable=True),
    sa.Column('performer_name', sa.String(length=300), nullable=True),
    sa.Column('performer_identifier', sa.JSON(), nullable=True),
    sa.Column('status', sa.Enum('draft', 'active', 'on_hold', 'completed', 'revoked', name='interventionstatus', native_enum=False, length=40), nullable=False),
    sa.Column('priority', sa.Enum('routine', 'urgent', 'asap', 'stat', name='priority', native_enum=False, length=40), nullable=False),
    sa.Column('scheduled_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scheduled_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=True),
    sa.Column('referral_outcome', sa.Enum('service_provided', 'declined_by_patient', 'not_eligible', 'unable_to_contact', 'waitlisted', 'referred_elsewhere', name='referraloutcome', native_enum=False, length=40), nullable=True),
    sa.Column('outcome_note', sa.Text(), nullable=True),
    sa.Column('fhir_extras', sa.JSON(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_interventions_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interventions'))
    )
    with op.batch_alter_table('interventions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_interventions_case_id'), ['case_id'], unique=False)

    op.create_table('notes',
    sa.Column('author', sa.String(length=200), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_notes_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes'))
    )
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notes_case_id'), ['case_id'], unique=False)

    op.create_table('transitions',
    sa.Column('kind', sa.Enum('discharge', 'admission', 'level_of_care_change', 'transfer', name='transitionkind', native_enum=False, length=40), nullable=False),
    sa.Column('from_setting', sa.Enum('acute_hospital', 'skilled_nursing_facility', 'inpatient_rehabilitation', 'home', 'home_with_home_health', 'assisted_living', 'long_term_care', 'hospice', 'behavioral_health_facility', 'shelter', name='caresetting', native_enum=False, length=40), nullable=False),
    sa.Column('to_setting', sa.Enum('acute_hospital', 'skilled_nursing_facility', 'inpatient_rehabilitation', 'home', 'home_with_home_health', 'assisted_living', 'long_term_care', 'hospice', 'behavioral_health_facility', 'shelter', name='caresetting', native_enum=False, length=40), nullable=False),
    sa.Column('planned_date', sa.Date(), nullable=True),
    sa.Column('actual_date', sa.Date(), nullable=True),
    sa.Column('status', sa.Enum('planned', 'completed', 'cancelled', name='transitionstatus', native_enum=False, length=40), nullable=False),
    sa.Column('follow_ups', sa.JSON(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_transitions_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transitions'))
    )
    with op.batch_alter_table('transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transitions_case_id'), ['case_id'], unique=False)

    op.create_table('goal_progress',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('goal_id', sa.String(length=36), nullable=False),
    sa.Column('check_in_id', sa.String(length=36), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=200), nullable=True),
    sa.Column('achievement_status', sa.Enum('in_progress', 'improving', 'worsening', 'no_change', 'achieved', 'sustaining', 'not_achieved', 'no_progress', 'not_attainable', name='goalachievement', native_enum=False, length=40), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['check_in_id'], ['check_ins.id'], name=op.f('fk_goal_progress_check_in_id_check_ins'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_goal_progress_goal_id_goals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goal_progress'))
    )
    with op.batch_alter_table('goal_progress', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_goal_progress_check_in_id'), ['check_in_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_goal_progress_goal_id'), ['goal_id'], unique=False)

    op.create_table('intervention_goals',
    sa.Column('intervention_id', sa.String(length=36), nullable=False),
    sa.Column('goal_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_intervention_goals_goal_id_goals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['intervention_id'], ['interventions.id'], name=op.f('fk_intervention_goals_intervention_id_interventions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('intervention_id', 'goal_id', name=op.f('pk_intervention_goals'))
    )
    op.create_table('needs',
    sa.Column('assessment_id', sa.String(length=36), nullable=True),
    sa.Column('domain', sa.Enum('medical', 'behavioral', 'functional', 'housing', 'food', 'transportation', 'financial', 'safety', name='needdomain', native_enum=False, length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('severity', sa.Enum('mild', 'moderate', 'severe', name='severity', native_enum=False, length=40), nullable=True),
    sa.Column('status', sa.Enum('active', 'resolved', name='needstatus', native_enum=False, length=40), nullable=False),
    sa.Column('code', sa.JSON(), nullable=True),
    sa.Column('fhir_extras', sa.JSON(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_needs_assessment_id_assessments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_needs_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_needs'))
    )
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_needs_assessment_id'), ['assessment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_needs_case_id'), ['case_id'], unique=False)

    op.create_table('risks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('assessment_id', sa.String(length=36), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('level', sa.Enum('low', 'moderate', 'high', name='risklevel', native_enum=False, length=40), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_risks_assessment_id_assessments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risks'))
    )
    with op.batch_alter_table('risks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risks_assessment_id'), ['assessment_id'], unique=False)

    op.create_table('goal_needs',
    sa.Column('goal_id', sa.String(length=36), nullable=False),
    sa.Column('need_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_goal_needs_goal_id_goals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['need_id'], ['needs.id'], name=op.f('fk_goal_needs_need_id_needs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('goal_id', 'need_id', name=op.f('pk_goal_needs'))
    )
    op.create_table('intervention_needs',
    sa.Column('intervention_id', sa.String(length=36), nullable=False),
    sa.Column('need_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['intervention_id'], ['interventions.id'], name=op.f('fk_intervention_needs_intervention_id_interventions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['need_id'], ['needs.id'], name=op.f('fk_intervention_needs_need_id_needs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('intervention_id', 'need_id', name=op.f('pk_intervention_needs'))
    )
    


def downgrade() -> None:
    
    op.drop_table('intervention_needs')
    op.drop_table('goal_needs')
    with op.batch_alter_table('risks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risks_assessment_id'))

    op.drop_table('risks')
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_needs_case_id'))
        batch_op.drop_index(batch_op.f('ix_needs_assessment_id'))

    op.drop_table('needs')
    op.drop_table('intervention_goals')
    with op.batch_alter_table('goal_progress', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_goal_progress_goal_id'))
        batch_op.drop_index(batch_op.f('ix_goal_progress_check_in_id'))

    op.drop_table('goal_progress')
    with op.batch_alter_table('transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transitions_case_id'))

    op.drop_table('transitions')
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notes_case_id'))

    op.drop_table('notes')
    with op.batch_alter_table('interventions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_interventions_case_id'))

    op.drop_table('interventions')
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_goals_target_due_date'))
        batch_op.drop_index(batch_op.f('ix_goals_case_id'))

    op.drop_table('goals')
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_check_ins_case_id'))

    op.drop_table('check_ins')
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_events_case_id'))

    op.drop_table('case_events')
    with op.batch_alter_table('care_team_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_team_members_case_id'))

    op.drop_table('care_team_members')
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assessments_case_id'))

    op.drop_table('assessments')
    with op.batch_alter_table('patient_identifiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_identifiers_patient_id'))

    op.drop_table('patient_identifiers')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_status'))
        batch_op.drop_index(batch_op.f('ix_cases_program'))
        batch_op.drop_index(batch_op.f('ix_cases_patient_id'))
        batch_op.drop_index(batch_op.f('ix_cases_manager'))

    op.drop_table('cases')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_family_name'))

    op.drop_table('patients')
    op.drop_table('api_keys')
    
