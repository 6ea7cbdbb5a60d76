"""practitioners: the professional identity (name, NPI) of a user or API key

Revision ID: 0026_practitioners
Revises: 0024_pull_scope
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db.base

revision: str = "0026_practitioners"
down_revision: str | None = "0024_pull_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "practitioners",
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("given_names", sa.JSON(), nullable=False),
        sa.Column("npi", sa.String(length=10), nullable=True),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("actor", name=op.f("pk_practitioners")),
    )


def downgrade() -> None:
    op.drop_table("practitioners")
