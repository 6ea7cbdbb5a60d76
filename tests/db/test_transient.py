"""Which real database errors are transient (`service.db.transient`): a serialization failure
on PostgreSQL, SQLite's busy timeout; not an error of the statement itself. (A real deadlock,
through both APIs: tests/fhir_api/test_transient_failures.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from service.db.session import Database
from service.db.transient import SERIALIZATION_FAILURE, sqlstate, transient_failure
from service.errors import TransientFailure


def _transient(error: DBAPIError) -> TransientFailure:
    failure = transient_failure(error)
    assert failure is not None, repr(error.orig)
    assert failure.status == 503
    assert failure.headers == {"Retry-After": "1"}
    return failure


async def test_a_serialization_failure_is_transient(database: Database, is_postgres: bool) -> None:
    """Two REPEATABLE READ transactions read one row; the first updates it and commits, so
    the second's update cannot be ordered after what it read (PostgreSQL section 13.2.2)."""
    if not is_postgres:
        pytest.skip("SQLite has no concurrent writers to serialize")
    engine = database.engine.execution_options(isolation_level="REPEATABLE READ")
    async with engine.connect() as setup:
        await setup.execute(text("CREATE TABLE serialization_probe (n int)"))
        await setup.execute(text("INSERT INTO serialization_probe VALUES (0)"))
        await setup.commit()
    try:
        async with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):  # each takes its snapshot now
                await connection.execute(text("SELECT n FROM serialization_probe"))
            await first.execute(text("UPDATE serialization_probe SET n = 1"))
            await first.commit()
            with pytest.raises(DBAPIError) as raised:
                await second.execute(text("UPDATE serialization_probe SET n = 2"))
            await second.rollback()
    finally:
        async with engine.connect() as cleanup:
            await cleanup.execute(text("DROP TABLE serialization_probe"))
            await cleanup.commit()
    assert sqlstate(raised.value) == SERIALIZATION_FAILURE
    assert "concurrent change" in _transient(raised.value).detail


async def test_sqlites_busy_timeout_is_transient(tmp_path: Path) -> None:
    """Another process's write lock outlasting the busy timeout: "database is locked"."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}"
    holder = create_async_engine(url)
    waiter = create_async_engine(url, connect_args={"timeout": 0})  # no busy wait at all
    try:
        async with holder.connect() as held:
            await held.execute(text("CREATE TABLE t (n int)"))
            await held.commit()
            await held.exec_driver_sql("BEGIN IMMEDIATE")  # the one write lock, kept
            with pytest.raises(DBAPIError) as raised:
                async with waiter.begin() as connection:
                    await connection.exec_driver_sql("BEGIN IMMEDIATE")
            await held.rollback()
    finally:
        await holder.dispose()
        await waiter.dispose()
    assert isinstance(raised.value.orig, sqlite3.OperationalError)
    assert "locked by another process" in _transient(raised.value).detail


async def test_an_error_of_the_statement_is_not_transient(database: Database) -> None:
    async with database.engine.connect() as connection:
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(text("SELEC 1"))
    assert transient_failure(raised.value) is None
