"""FHIR store: current resources, their versions, and the search index.

Revision ID: 0004_fhir_store
Revises: 0001_foundation
Create Date: 2026-11-23 10:19:21.339005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004_fhir_store'
down_revision: str | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fhir_resource_versions',
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'id', 'version_id', name=op.f('pk_fhir_resource_versions'))
    )
    with op.batch_alter_table('fhir_resource_versions', schema=None) as batch_op:
        batch_op.create_index('ix_fhir_resource_versions_type_updated', ['resource_type', 'last_updated'], unique=False)

    op.create_table('fhir_resources',
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=True),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('resource_type', 'id', name=op.f('pk_fhir_resources'))
    )
    with op.batch_alter_table('fhir_resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fhir_resources_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fhir_resources_last_updated'), ['last_updated'], unique=False)
        batch_op.create_index(batch_op.f('ix_fhir_resources_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_fhir_resources_type_created', ['resource_type', 'created_at', 'id'], unique=False)

    op.create_table('fhir_search_index',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=500), nullable=True),
    sa.Column('value', sa.String(length=500), nullable=True),
    sa.Column('low', sa.DateTime(timezone=True), nullable=True),
    sa.Column('high', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_search_index'))
    )
    with op.batch_alter_table('fhir_search_index', schema=None) as batch_op:
        batch_op.create_index('ix_fhir_search_lookup', ['resource_type', 'param', 'value'], unique=False)
        batch_op.create_index('ix_fhir_search_resource', ['resource_type', 'resource_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('fhir_search_index', schema=None) as batch_op:
        batch_op.drop_index('ix_fhir_search_resource')
        batch_op.drop_index('ix_fhir_search_lookup')

    op.drop_table('fhir_search_index')
    with op.batch_alter_table('fhir_resources', schema=None) as batch_op:
        batch_op.drop_index('ix_fhir_resources_type_created')
        batch_op.drop_index(batch_op.f('ix_fhir_resources_patient_id'))
        batch_op.drop_index(batch_op.f('ix_fhir_resources_last_updated'))
        batch_op.drop_index(batch_op.f('ix_fhir_resources_case_id'))

    op.drop_table('fhir_resources')
    with op.batch_alter_table('fhir_resource_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_fhir_resource_versions_type_updated')

    op.drop_table('fhir_resource_versions')
