"""Migrations run the same way on SQLite and PostgreSQL, match the models, and gate start-up."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from service.app import SchemaOutOfDate, create_app
from service.db.models_registry import Base
from service.db.schema import alembic_config, current_revisions, head_revisions, upgrade_to_head
from service.db.session import create_engine
from service.settings import Settings
from tests.conftest import settings_for


def _downgrade_to_base(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_matches_the_models_and_downgrade_removes_everything(
    empty_database_url: str,
) -> None:
    engine = create_engine(settings_for(empty_database_url))
    try:
        await upgrade_to_head(engine)
        assert await current_revisions(engine) == head_revisions()
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade_to_base)
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
        await upgrade_to_head(engine)  # and back up again, on the same database
        assert await current_revisions(engine) == head_revisions()
    finally:
        await engine.dispose()


async def _start(settings: Settings) -> FastAPI:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    return app


async def test_start_up_refuses_an_out_of_date_schema(empty_database_url: str) -> None:
    with pytest.raises(SchemaOutOfDate, match="casebridge db upgrade"):
        await _start(settings_for(empty_database_url))


async def test_auto_migrate_upgrades_then_serves(empty_database_url: str) -> None:
    settings = settings_for(empty_database_url, auto_migrate=True)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["schema"] == ",".join(sorted(head_revisions()))


async def test_readyz_fails_when_the_schema_falls_behind(empty_database_url: str) -> None:
    settings = settings_for(empty_database_url, auto_migrate=True)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/readyz")).status_code == 200
            async with app.state.database.engine.begin() as connection:
                await connection.run_sync(_downgrade_to_base)
            response = await http.get("/readyz")
            assert (await http.get("/healthz")).status_code == 200
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "code expects" in response.json()["detail"]


def test_every_revision_id_fits_the_version_table() -> None:
    """alembic_version.version_num is VARCHAR(32): PostgreSQL refuses a longer id (SQLite
    does not check, so only a PostgreSQL run would find out)."""
    script = ScriptDirectory.from_config(alembic_config())
    too_long = [r.revision for r in script.walk_revisions() if len(r.revision) > 32]
    assert too_long == []


def _to(revision: str) -> Any:
    def move(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        if revision == "heads":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)

    return move


async def test_the_people_search_index_migration_indexes_the_people_stored_before(
    empty_database_url: str,
) -> None:
    """0028: Practitioners and the Organization stored before `/fhir` searched them get their
    index rows, from their stored bytes; downgrading takes the rows away again."""
    engine = create_engine(settings_for(empty_database_url))
    practitioner = {
        "resourceType": "Practitioner",
        "id": "p1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "name": [{"family": "Lee", "given": ["Ana"]}],
    }
    rows = "SELECT param, system, value FROM fhir_search_index WHERE resource_id = 'p1'"
    try:
        await upgrade_to_head(engine)
        async with engine.begin() as connection:
            await connection.run_sync(_to("0027_idempotency_audit"))
            await connection.execute(
                text(
                    "INSERT INTO fhir_resources (resource_type, id, version_id, created_at,"
                    " last_updated, deleted, content, content_hash) VALUES ('Practitioner',"
                    " 'p1', 1, :now, :now, false, :content, 'x')"
                ),
                {"now": dt.datetime.now(dt.UTC), "content": orjson.dumps(practitioner)},
            )
            assert (await connection.execute(text(rows))).all() == []
            await connection.run_sync(_to("heads"))
            indexed = {tuple(row) for row in await connection.execute(text(rows))}
            assert indexed == {
                ("identifier", "http://hl7.org/fhir/sid/us-npi", "1234567893"),
                ("family", None, "lee"),
                ("given", None, "ana"),
                ("name", None, "lee"),
                ("name", None, "ana"),
            }
            await connection.run_sync(_to("0027_idempotency_audit"))
            assert (await connection.execute(text(rows))).all() == []
    finally:
        await engine.dispose()
