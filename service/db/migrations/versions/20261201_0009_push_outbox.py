"""push outbox

Revision ID: 0009_push_outbox
Revises: 0007_ehr_links
Create Date: 2026-12-01 15:59:07.343310
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009_push_outbox'
down_revision: str | None = '0007_ehr_links'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('push_conflicts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('local_id', sa.String(length=64), nullable=False),
    sa.Column('local_version_id', sa.Integer(), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=False),
    sa.Column('remote_version_id', sa.String(length=64), nullable=True),
    sa.Column('elements', sa.JSON(), nullable=False),
    sa.Column('base', sa.JSON(), nullable=False),
    sa.Column('local', sa.JSON(), nullable=False),
    sa.Column('remote', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('open', 'resolved', name='conflictstatus', native_enum=False, length=40), nullable=False),
    sa.Column('resolution', sa.Enum('keep-local', 'take-remote', 'edit', name='conflictresolution', native_enum=False, length=40), nullable=True),
    sa.Column('resolved_by', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_push_conflicts_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_push_conflicts_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_conflicts'))
    )
    with op.batch_alter_table('push_conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_conflicts_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_push_conflicts_connection_id'), ['connection_id'], unique=False)

    op.create_table('push_outbox',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('author', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claim_token', sa.String(length=36), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_push_outbox_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_push_outbox_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_outbox'))
    )
    with op.batch_alter_table('push_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_outbox_claim_token'), ['claim_token'], unique=False)
        batch_op.create_index(batch_op.f('ix_push_outbox_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index('ix_push_outbox_pair', ['case_id', 'connection_id', 'delivered_at'], unique=False)

    op.create_table('push_syncs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.Enum('pending', 'in-flight', 'synced', 'conflict', 'failed', 'dead', 'unsupported', name='syncstatus', native_enum=False, length=40), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_token', sa.String(length=36), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('unsupported', sa.JSON(), nullable=False),
    sa.Column('synced_version', sa.Integer(), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_push_syncs_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_push_syncs_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_syncs')),
    sa.UniqueConstraint('case_id', 'connection_id', name='uq_push_syncs_case_connection')
    )
    with op.batch_alter_table('push_syncs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_syncs_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index('ix_push_syncs_due', ['status', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('push_syncs', schema=None) as batch_op:
        batch_op.drop_index('ix_push_syncs_due')
        batch_op.drop_index(batch_op.f('ix_push_syncs_connection_id'))

    op.drop_table('push_syncs')
    with op.batch_alter_table('push_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_push_outbox_pair')
        batch_op.drop_index(batch_op.f('ix_push_outbox_connection_id'))
        batch_op.drop_index(batch_op.f('ix_push_outbox_claim_token'))

    op.drop_table('push_outbox')
    with op.batch_alter_table('push_conflicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_conflicts_connection_id'))
        batch_op.drop_index(batch_op.f('ix_push_conflicts_case_id'))

    op.drop_table('push_conflicts')
