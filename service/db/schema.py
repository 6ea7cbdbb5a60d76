"""Schema state and migrations: what revision the database is at, and upgrading it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def current_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revisions)


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revisions(engine) == head_revisions()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    # "heads": domains may add migrations on their own branches off the foundation.
    command.upgrade(config, "heads")


# Any constant of our own: the key of the PostgreSQL advisory lock that upgrades hold.
MIGRATION_LOCK_KEY = 0x63617365627269  # "casebri"


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Upgrade in one transaction. On PostgreSQL, replicas that start together with
    CASEBRIDGE_AUTO_MIGRATE queue on a transaction-level advisory lock: the first upgrades,
    the others then find the schema current instead of racing to create the same tables."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade)
