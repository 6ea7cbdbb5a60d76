"""connections: EHR connection registry, signing keys, SMART App Launch state and grants

Revision ID: 0002_connections
Revises: 0001_foundation
Create Date: 2026-11-23 10:15:04.132610
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_connections"
down_revision: str | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ehr_connections",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=False),
        sa.Column(
            "auth_mode",
            sa.Enum(
                "backend-services",
                "app-launch",
                "none",
                name="authmode",
                native_enum=False,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column("client_id", sa.String(length=500), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("signing_alg", sa.String(length=10), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=True),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ehr_connections")),
        sa.UniqueConstraint("name", name=op.f("uq_ehr_connections_name")),
    )
    op.create_table(
        "ehr_connection_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("alg", sa.String(length=10), nullable=False),
        sa.Column("kid", sa.String(length=100), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("encrypted_private_pem", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retire_after", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["ehr_connections.id"],
            name=op.f("fk_ehr_connection_keys_connection_id_ehr_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ehr_connection_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_ehr_connection_keys_kid")),
    )
    with op.batch_alter_table("ehr_connection_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ehr_connection_keys_connection_id"), ["connection_id"], unique=False
        )

    op.create_table(
        "smart_launch_grants",
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("browser_session_hash", sa.String(length=64), nullable=False),
        sa.Column("encrypted_access_token", sa.LargeBinary(), nullable=False),
        sa.Column("encrypted_refresh_token", sa.LargeBinary(), nullable=True),
        sa.Column("scope", sa.String(length=4000), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("patient", sa.String(length=200), nullable=True),
        sa.Column("encounter", sa.String(length=200), nullable=True),
        sa.Column("fhir_user", sa.String(length=2000), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["ehr_connections.id"],
            name=op.f("fk_smart_launch_grants_connection_id_ehr_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_launch_grants")),
    )
    with op.batch_alter_table("smart_launch_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_smart_launch_grants_browser_session_hash"),
            ["browser_session_hash"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_smart_launch_grants_connection_id"), ["connection_id"], unique=False
        )

    op.create_table(
        "smart_launch_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("browser_session_hash", sa.String(length=64), nullable=False),
        sa.Column("encrypted_code_verifier", sa.LargeBinary(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("launch", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["ehr_connections.id"],
            name=op.f("fk_smart_launch_states_connection_id_ehr_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_smart_launch_states")),
    )
    with op.batch_alter_table("smart_launch_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_smart_launch_states_connection_id"), ["connection_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("smart_launch_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smart_launch_states_connection_id"))

    op.drop_table("smart_launch_states")
    with op.batch_alter_table("smart_launch_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smart_launch_grants_connection_id"))
        batch_op.drop_index(batch_op.f("ix_smart_launch_grants_browser_session_hash"))

    op.drop_table("smart_launch_grants")
    with op.batch_alter_table("ehr_connection_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ehr_connection_keys_connection_id"))

    op.drop_table("ehr_connection_keys")
    op.drop_table("ehr_connections")
