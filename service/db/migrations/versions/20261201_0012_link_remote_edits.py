"""link remote edits

Revision ID: 0012_link_remote_edits
Revises: 0011_connection_doc_fallback
Create Date: 2026-12-01 19:42:32.832815
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012_link_remote_edits'
down_revision: str | None = '0011_connection_doc_fallback'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ehr_resource_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remote_edits', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ehr_resource_links', schema=None) as batch_op:
        batch_op.drop_column('remote_edits')

