"""replicas: pull job leases, the refresh schedule, shared EHR tokens, push throttles

Revision ID: 0019_replicas
Revises: 0016_idempotency_keys
Create Date: 2026-12-04 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db.base

revision: str = "0019_replicas"
down_revision: str | None = "0016_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ehr_pull_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", service.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("done_targets", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "pulled_patient_ids", sa.JSON(), server_default=sa.text("'[]'"), nullable=False
            )
        )
    with op.batch_alter_table("push_syncs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("throttles", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "ehr_pull_schedules",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("next_run_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ehr_pull_schedules")),
    )
    op.create_table(
        "smart_shared_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("scope_key", sa.String(length=64), nullable=False),
        sa.Column("encrypted_access_token", sa.LargeBinary(), nullable=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=True),
        sa.Column("scope", sa.String(length=4000), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("lifetime_seconds", sa.Float(), nullable=True),
        sa.Column("fetch_lease_token", sa.String(length=36), nullable=True),
        sa.Column("fetch_lease_expires_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["ehr_connections.id"],
            name=op.f("fk_smart_shared_tokens_connection_id_ehr_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_shared_tokens")),
        sa.UniqueConstraint("connection_id", "scope_key", name="uq_smart_shared_tokens_key"),
    )
    with op.batch_alter_table("smart_shared_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_smart_shared_tokens_connection_id"), ["connection_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("smart_shared_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smart_shared_tokens_connection_id"))
    op.drop_table("smart_shared_tokens")
    op.drop_table("ehr_pull_schedules")
    with op.batch_alter_table("push_syncs", schema=None) as batch_op:
        batch_op.drop_column("throttles")
    with op.batch_alter_table("ehr_pull_jobs", schema=None) as batch_op:
        batch_op.drop_column("pulled_patient_ids")
        batch_op.drop_column("done_targets")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_token")
