"""push pair indexes: a pair's open conflicts by their whole key

Revision ID: 0013_push_pair_indexes
Revises: 0012_link_remote_edits
Create Date: 2026-12-03 12:40:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0013_push_pair_indexes'
down_revision: str | None = '0012_link_remote_edits'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('push_conflicts', schema=None) as batch_op:
        batch_op.create_index(
            'ix_push_conflicts_pair', ['case_id', 'connection_id', 'status'], unique=False
        )
        # The new index leads with case_id: it serves what this one did.
        batch_op.drop_index(batch_op.f('ix_push_conflicts_case_id'))


def downgrade() -> None:
    with op.batch_alter_table('push_conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_conflicts_case_id'), ['case_id'], unique=False)
        batch_op.drop_index('ix_push_conflicts_pair')
