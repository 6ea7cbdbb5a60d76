"""Audit trail: AuditEvents of /fhir interactions and the patients they concern.

Revision ID: 0005_audit
Revises: 0001_foundation
Create Date: 2026-11-23 10:31:56.227942
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005_audit'
down_revision: str | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('agent', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=1), nullable=False),
    sa.Column('interaction', sa.String(length=40), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=True),
    sa.Column('resource_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_agent'), ['agent'], unique=False)
        batch_op.create_index('ix_audit_events_recorded', ['recorded_at', 'id'], unique=False)

    op.create_table('audit_event_patients',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['audit_events.id'], name=op.f('fk_audit_event_patients_event_id_audit_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'patient_id', name=op.f('pk_audit_event_patients'))
    )
    with op.batch_alter_table('audit_event_patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_patients_patient_id'), ['patient_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('audit_event_patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_patients_patient_id'))

    op.drop_table('audit_event_patients')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_recorded')
        batch_op.drop_index(batch_op.f('ix_audit_events_agent'))

    op.drop_table('audit_events')
