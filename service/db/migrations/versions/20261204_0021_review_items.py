"""review items: inbound changes the case could not take, for a person to decide

Revision ID: 0021_review_items
Revises: 0019_replicas
Create Date: 2026-12-04 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db.base

revision: str = "0021_review_items"
down_revision: str | None = "0019_replicas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=40)


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.Column("patient_id", sa.String(length=36), nullable=True),
        sa.Column("connection_id", sa.String(length=36), nullable=True),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("local_id", sa.String(length=64), nullable=True),
        sa.Column("remote_reference", sa.String(length=200), nullable=True),
        sa.Column("elements", sa.JSON(), nullable=False),
        sa.Column("ehr_value", sa.JSON(), nullable=False),
        sa.Column("case_value", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "source",
            _enum("reviewsource", "pull", "merge", "resolution", "notification", "intake"),
            nullable=False,
        ),
        sa.Column("status", _enum("reviewstatus", "open", "resolved"), nullable=False),
        sa.Column(
            "decision",
            _enum("reviewdecision", "apply-ehr-value", "keep-case-value", "dismissed"),
            nullable=True,
        ),
        sa.Column("decided_by", sa.String(length=500), nullable=True),
        sa.Column("decided_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_review_items_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_review_items_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["ehr_connections.id"],
            name=op.f("fk_review_items_connection_id_ehr_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_items_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_review_items_connection_id"), ["connection_id"], unique=False
        )
        batch_op.create_index(
            "ix_review_items_status_created", ["status", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_review_items_case_status", ["case_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_items_case_status")
        batch_op.drop_index("ix_review_items_status_created")
        batch_op.drop_index(batch_op.f("ix_review_items_connection_id"))
        batch_op.drop_index(batch_op.f("ix_review_items_patient_id"))
    op.drop_table("review_items")
