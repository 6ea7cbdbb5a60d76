"""EHR pulls: pulled records, cursors, jobs, identity conflicts

Revision ID: 0008_pulls
Revises: 0007_ehr_links
Create Date: 2026-12-01 16:31:47.676928
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008_pulls'
down_revision: str | None = '0007_ehr_links'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ehr_bulk_cursors',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('group_id', sa.String(length=64), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_ehr_bulk_cursors_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ehr_bulk_cursors')),
    sa.UniqueConstraint('connection_id', 'group_id', name='uq_ehr_bulk_cursors_connection_group')
    )
    with op.batch_alter_table('ehr_bulk_cursors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ehr_bulk_cursors_connection_id'), ['connection_id'], unique=False)

    op.create_table('ehr_identity_conflicts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('remote_patient_id', sa.String(length=64), nullable=False),
    sa.Column('candidate_patient_ids', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_patient_id', sa.String(length=36), nullable=True),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_ehr_identity_conflicts_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resolved_patient_id'], ['patients.id'], name=op.f('fk_ehr_identity_conflicts_resolved_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ehr_identity_conflicts'))
    )
    with op.batch_alter_table('ehr_identity_conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ehr_identity_conflicts_connection_id'), ['connection_id'], unique=False)

    op.create_table('ehr_pull_cursors',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('remote_patient_id', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_ehr_pull_cursors_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ehr_pull_cursors')),
    sa.UniqueConstraint('connection_id', 'remote_patient_id', 'resource_type', name='uq_ehr_pull_cursors_connection_patient_type')
    )
    with op.batch_alter_table('ehr_pull_cursors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ehr_pull_cursors_connection_id'), ['connection_id'], unique=False)

    op.create_table('ehr_pull_jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('state', sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='pullstate', native_enum=False, length=40), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('bulk_group_id', sa.String(length=64), nullable=True),
    sa.Column('bulk_types', sa.JSON(), nullable=False),
    sa.Column('progress_note', sa.String(length=500), nullable=True),
    sa.Column('patients_done', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('failures', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_ehr_pull_jobs_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ehr_pull_jobs'))
    )
    with op.batch_alter_table('ehr_pull_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ehr_pull_jobs_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ehr_pull_jobs_state'), ['state'], unique=False)

    op.create_table('ehr_records',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=False),
    sa.Column('remote_version_id', sa.String(length=64), nullable=True),
    sa.Column('remote_last_updated', sa.DateTime(timezone=True), nullable=True),
    sa.Column('patient_id', sa.String(length=36), nullable=True),
    sa.Column('remote_patient_id', sa.String(length=64), nullable=True),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('pulled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_ehr_records_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_ehr_records_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ehr_records')),
    sa.UniqueConstraint('connection_id', 'resource_type', 'remote_id', name='uq_ehr_records_connection_remote')
    )
    with op.batch_alter_table('ehr_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ehr_records_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ehr_records_patient_id'), ['patient_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ehr_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ehr_records_patient_id'))
        batch_op.drop_index(batch_op.f('ix_ehr_records_connection_id'))

    op.drop_table('ehr_records')
    with op.batch_alter_table('ehr_pull_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ehr_pull_jobs_state'))
        batch_op.drop_index(batch_op.f('ix_ehr_pull_jobs_connection_id'))

    op.drop_table('ehr_pull_jobs')
    with op.batch_alter_table('ehr_pull_cursors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ehr_pull_cursors_connection_id'))

    op.drop_table('ehr_pull_cursors')
    with op.batch_alter_table('ehr_identity_conflicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ehr_identity_conflicts_connection_id'))

    op.drop_table('ehr_identity_conflicts')
    with op.batch_alter_table('ehr_bulk_cursors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ehr_bulk_cursors_connection_id'))

    op.drop_table('ehr_bulk_cursors')
