"""pull scope: what a connection pulls, its search overrides, and the searches probed

Revision ID: 0024_pull_scope
Revises: 0021_review_items
Create Date: 2026-12-04 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db.base

revision: str = "0024_pull_scope"
down_revision: str | None = "0021_review_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ehr_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pull_scope", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("search_overrides", sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
        )
    op.create_table(
        "ehr_search_probes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("patient_param", sa.String(length=20), nullable=True),
        sa.Column("probed_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["ehr_connections.id"],
            name=op.f("fk_ehr_search_probes_connection_id_ehr_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ehr_search_probes")),
        sa.UniqueConstraint(
            "connection_id", "resource_type", name="uq_ehr_search_probes_connection_type"
        ),
    )
    with op.batch_alter_table("ehr_search_probes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ehr_search_probes_connection_id"), ["connection_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ehr_search_probes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ehr_search_probes_connection_id"))
    op.drop_table("ehr_search_probes")
    with op.batch_alter_table("ehr_connections", schema=None) as batch_op:
        batch_op.drop_column("search_overrides")
        batch_op.drop_column("pull_scope")
