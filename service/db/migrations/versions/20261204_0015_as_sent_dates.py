"""as sent dates: ServiceRequest.authoredOn and Condition.recordedDate kept as received

Revision ID: 0015_as_sent_dates
Revises: 0018_rate_limit_buckets
Create Date: 2026-12-04 15:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0015_as_sent_dates'
down_revision: str | None = '0018_rate_limit_buckets'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('interventions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authored_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.drop_column('recorded_at')
    with op.batch_alter_table('interventions', schema=None) as batch_op:
        batch_op.drop_column('authored_at')
