"""connection document fallback

Revision ID: 0011_connection_doc_fallback
Revises: 0010_merge
Create Date: 2026-12-01 19:40:18.610379
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011_connection_doc_fallback'
down_revision: str | None = '0010_merge'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ehr_connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('document_fallback', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ehr_connections', schema=None) as batch_op:
        batch_op.drop_column('document_fallback')

