"""EHR links: local patients and resources paired with their copies on a connection

Revision ID: 0007_ehr_links
Revises: 0006_merge
Create Date: 2026-12-01 15:53:13.572636
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007_ehr_links'
down_revision: str | None = '0006_merge'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ehr_patient_links',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('patient_id', sa.String(length=36), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_ehr_patient_links_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_ehr_patient_links_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ehr_patient_links')),
    sa.UniqueConstraint('connection_id', 'remote_id', name='uq_ehr_patient_links_connection_remote')
    )
    with op.batch_alter_table('ehr_patient_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ehr_patient_links_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ehr_patient_links_patient_id'), ['patient_id'], unique=False)

    op.create_table('ehr_resource_links',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('local_id', sa.String(length=64), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=True),
    sa.Column('remote_version_id', sa.String(length=64), nullable=True),
    sa.Column('origin', sa.Enum('pulled', 'pushed', name='linkorigin', native_enum=False, length=40), nullable=False),
    sa.Column('pushed_version_id', sa.Integer(), nullable=True),
    sa.Column('pushed_content', sa.LargeBinary(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['ehr_connections.id'], name=op.f('fk_ehr_resource_links_connection_id_ehr_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ehr_resource_links')),
    sa.UniqueConstraint('connection_id', 'resource_type', 'local_id', name='uq_ehr_resource_links_connection_local'),
    sa.UniqueConstraint('connection_id', 'resource_type', 'remote_id', name='uq_ehr_resource_links_connection_remote')
    )
    with op.batch_alter_table('ehr_resource_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ehr_resource_links_connection_id'), ['connection_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ehr_resource_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ehr_resource_links_connection_id'))

    op.drop_table('ehr_resource_links')
    with op.batch_alter_table('ehr_patient_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ehr_patient_links_patient_id'))
        batch_op.drop_index(batch_op.f('ix_ehr_patient_links_connection_id'))

    op.drop_table('ehr_patient_links')
