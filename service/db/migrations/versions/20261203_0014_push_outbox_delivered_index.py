"""push outbox delivered index: the retention prune reads the oldest deliveries by index

Revision ID: 0014_push_outbox_delivered
Revises: 0013_push_pair_indexes
Create Date: 2026-12-03 16:10:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0014_push_outbox_delivered'
down_revision: str | None = '0013_push_pair_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('push_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_push_outbox_delivered_at', ['delivered_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('push_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_push_outbox_delivered_at')
