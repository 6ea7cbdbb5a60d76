"""idempotency keys: the stored answers of /fhir POSTs sent with an Idempotency-Key

Revision ID: 0016_idempotency_keys
Revises: 0015_as_sent_dates
Create Date: 2026-12-04 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0016_idempotency_keys'
down_revision: str | None = '0015_as_sent_dates'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'idempotency_keys',
        sa.Column('principal', sa.String(length=255), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('headers', sa.JSON(), nullable=True),
        sa.Column('body', sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint('principal', 'key', name=op.f('pk_idempotency_keys')),
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_idempotency_keys_expires_at'), ['expires_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_keys_expires_at'))
    op.drop_table('idempotency_keys')
