"""A write cancelled mid-statement (a pull stopped by a restart, a client gone) leaves SQLite's
write lock free: the next writer, even one that will not wait at all, writes at once.

The cancel is delivered at every statement of the write in turn, the COMMIT included, while
the statement runs in the driver's thread: SQLAlchemy then invalidates the connection and closes
it, and the cursor of a statement with rows left (alive in the cancelled task's traceback) used
to keep the closed connection's transaction, and the lock, until the garbage collector took it
(service/db/session.py, `_SqliteConnection`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from sqlalchemy import event, insert, make_url, select
from sqlalchemy.pool import QueuePool

from service.db.session import Database
from service.patients.models import Patient

# Guards against a write that never ends; each one here has fewer statements.
MOST_STATEMENTS = 50

Write = Callable[[Database], Coroutine[Any, Any, None]]


async def _unit_of_work(database: Database) -> None:
    async with database.unit_of_work() as unit:
        unit.add_all(Patient(given_name=f"A{i}", fhir_extras={}) for i in range(3))
        await unit.flush()
        # Rows left to fetch when the cancel lands: an unfinished statement.
        assert len((await unit.scalars(select(Patient.id))).all()) >= 3


async def _transaction(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(Patient(given_name=f"B{i}", fhir_extras={}) for i in range(3))
        await session.flush()
        assert len((await session.scalars(select(Patient.id))).all()) >= 3


async def _connection(database: Database) -> None:
    async with database.connection() as connection:
        await connection.execute(
            insert(Patient), [{"given_name": f"C{i}", "version": 1} for i in range(3)]
        )
        assert len((await connection.execute(select(Patient.id))).all()) >= 3


def _another_writer_can_write_at_once(database: Database) -> bool:
    """A second connection that does not wait for the write lock (busy timeout 0) takes it."""
    path = make_url(database.settings.database_url).database
    assert path is not None
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    finally:
        writer.close()


async def _cancelled_at(database: Database, write: Write, cancel_at: int) -> bool:
    """Run `write`, cancelling it when its `cancel_at`th statement starts; whether it was."""
    engine = database.engine.sync_engine
    task = asyncio.create_task(write(database))
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1
        if statements == cancel_at:
            task.cancel()  # delivered while this statement runs in the driver's thread

    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "commit", count)
    try:
        await task
    except asyncio.CancelledError:
        return True
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "commit", count)
    return False


@pytest.mark.parametrize("write", [_unit_of_work, _transaction, _connection])
async def test_a_write_cancelled_at_any_statement_leaves_the_write_lock_free(
    database: Database, is_postgres: bool, write: Write
) -> None:
    if is_postgres:
        pytest.skip("SQLite's one write lock; PostgreSQL ends a closed session's transaction")
    cancelled = 0
    for cancel_at in range(1, MOST_STATEMENTS + 1):
        if not await _cancelled_at(database, write, cancel_at):
            break  # fewer statements than `cancel_at`: each one was cancelled once
        cancelled += 1
        assert _another_writer_can_write_at_once(database), f"cancelled at statement {cancel_at}"
        assert isinstance(database.engine.pool, QueuePool)
        assert database.engine.pool.checkedout() == 0  # the connection went back, or was closed
    else:
        pytest.fail(f"the write did not end within {MOST_STATEMENTS} statements")
    # BEGIN, the inserts, the SELECT and the COMMIT were each cancelled once.
    assert cancelled >= 4
