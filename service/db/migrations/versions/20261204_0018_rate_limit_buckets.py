"""rate limit buckets: token buckets shared across replicas

Revision ID: 0018_rate_limit_buckets
Revises: 0020_key_signs_from
Create Date: 2026-12-04 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0018_rate_limit_buckets'
down_revision: str | None = '0020_key_signs_from'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'rate_limit_buckets',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('tokens', sa.Double(), nullable=False),
        sa.Column('updated_at', sa.Double(), nullable=False),
        sa.Column('granted', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit_buckets')),
    )
    with op.batch_alter_table('rate_limit_buckets', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_rate_limit_buckets_updated_at'), ['updated_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('rate_limit_buckets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limit_buckets_updated_at'))
    op.drop_table('rate_limit_buckets')
