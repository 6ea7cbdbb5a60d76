"""fhir_clients: SMART Backend Services clients of /fhir, spent assertion ids, token keys

Revision ID: 0003_fhir_clients
Revises: 0001_foundation
Create Date: 2026-11-23 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003_fhir_clients'
down_revision: str | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fhir_clients',
    sa.Column('client_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('jwks_url', sa.String(length=2000), nullable=True),
    sa.Column('jwks', sa.JSON(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_clients')),
    sa.UniqueConstraint('client_id', name=op.f('uq_fhir_clients_client_id'))
    )
    op.create_table('fhir_used_assertions',
    sa.Column('client_id', sa.String(length=100), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'jti', name=op.f('pk_fhir_used_assertions'))
    )
    with op.batch_alter_table('fhir_used_assertions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fhir_used_assertions_expires_at'), ['expires_at'], unique=False)

    op.create_table('fhir_token_signing_keys',
    sa.Column('kid', sa.String(length=100), nullable=False),
    sa.Column('alg', sa.String(length=10), nullable=False),
    sa.Column('public_jwk', sa.JSON(), nullable=False),
    sa.Column('encrypted_private_pem', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_fhir_token_signing_keys'))
    )


def downgrade() -> None:
    op.drop_table('fhir_token_signing_keys')
    with op.batch_alter_table('fhir_used_assertions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fhir_used_assertions_expires_at'))

    op.drop_table('fhir_used_assertions')
    op.drop_table('fhir_clients')
