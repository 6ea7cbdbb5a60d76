"""connection key signs_from: a rotated-in key is published before it signs

Revision ID: 0020_key_signs_from
Revises: 0014_push_outbox_delivered
Create Date: 2026-12-04 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0020_key_signs_from'
down_revision: str | None = '0014_push_outbox_delivered'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ehr_connection_keys', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('signs_from', sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('ehr_connection_keys', schema=None) as batch_op:
        batch_op.drop_column('signs_from')
