"""Shared fixtures: a real, migrated database (SQLite by default; PostgreSQL when
CASEBRIDGE_TEST_DATABASE_URL names one), the app, and authenticated clients.

On PostgreSQL each test run creates its own database and drops it afterwards, so runs on the
same server never see each other's rows."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from service.app import create_app
from service.db.models_registry import Base
from service.db.schema import upgrade_to_head
from service.db.session import Database, create_engine
from service.settings import Settings

BOOTSTRAP_KEY = "test-bootstrap-" + secrets.token_hex(8)


async def _create_postgres_database(url: str) -> str:
    parsed = make_url(url)
    name = f"casebridge_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def _drop_postgres_database(admin_url: str, url: str) -> None:
    parsed, admin_parsed = make_url(url), make_url(admin_url)
    admin = await asyncpg.connect(
        host=admin_parsed.host,
        port=admin_parsed.port or 5432,
        user=admin_parsed.username,
        password=admin_parsed.password,
        database=admin_parsed.database,
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await admin.close()


async def _migrate(url: str) -> None:
    engine = create_engine(settings_for(url))
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


def settings_for(url: str, **overrides: Any) -> Settings:
    """Test settings: never read from the environment or a `.env` file."""
    values: dict[str, Any] = {
        "database_url": url,
        "encryption_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "bootstrap_api_key": BOOTSTRAP_KEY,
        "public_base_url": "http://testserver",
    }
    return Settings(_env_file=None, **(values | overrides))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("CASEBRIDGE_TEST_DATABASE_URL")
    if configured and configured.startswith("postgresql"):
        url = asyncio.run(_create_postgres_database(configured))
        asyncio.run(_migrate(url))
        yield url
        asyncio.run(_drop_postgres_database(configured, url))
        return
    path: Path = tmp_path_factory.mktemp("db") / "casebridge.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_migrate(url))
    yield url


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, on the same kind of server as the suite."""
    configured = os.environ.get("CASEBRIDGE_TEST_DATABASE_URL")
    if configured and configured.startswith("postgresql"):
        url = asyncio.run(_create_postgres_database(configured))
        yield url
        asyncio.run(_drop_postgres_database(configured, url))
        return
    yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The test's database handle; every row is deleted after the test."""
    db = Database(settings)
    yield db
    async with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(delete(table))
    await db.dispose()


@pytest.fixture
async def app(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"X-API-Key": BOOTSTRAP_KEY}
    ) as http:
        yield http


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
