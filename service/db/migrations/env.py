"""Alembic environment: async engine, URL from CaseBridge settings (or the caller's config)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from service.db.models_registry import Base
from service.db.session import create_engine
from service.settings import Settings, get_settings

target_metadata = Base.metadata


def _settings() -> Settings:
    url = context.config.attributes.get("database_url")
    if url is None:
        return get_settings()
    # Migrating needs only the URL: no secrets, and no dev-mode key file as a side effect.
    return Settings.model_construct(database_url=url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_settings())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
