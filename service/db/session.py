"""Engine and sessions. The request (or job) boundary commits; services only flush."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext, suppress
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from service.db.unit_of_work import UnitOfWork
from service.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Execution option of the engine that write transactions run on (see `_begin_sqlite`).
SQLITE_BEGIN_IMMEDIATE = "casebridge_sqlite_begin_immediate"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # In WAL mode NORMAL never corrupts the database; a power cut may lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class _SqliteConnection(sqlite3.Connection):
    """A connection whose close ends its transaction first.

    A task cancelled while its statement runs in aiosqlite's thread (a pull stopped by a
    shutdown) makes SQLAlchemy invalidate the connection and close it, without a rollback. When
    that statement had rows left to step through (a SELECT, an INSERT ... RETURNING), its cursor
    lives on in the cancelled task's traceback, and SQLite's close_v2 leaves a connection with
    an unfinished statement open as a "zombie" until it is finalized (sqlite.org/c3ref/
    close.html): the transaction, and with it SQLite's one write lock, stayed until the garbage
    collector took the cursor, and every other writer waited its busy timeout and failed with
    "database is locked". A rollback first ends the transaction whatever cursors remain; it runs
    in the driver's thread, after the interrupted statement, on every path that closes."""

    def close(self) -> None:
        with suppress(sqlite3.Error):  # closed already: nothing left to end
            if self.in_transaction:
                self.rollback()
        super().close()


def _begin_sqlite(connection: Any) -> None:
    """`BEGIN IMMEDIATE` for write transactions (the SQLAlchemy docs' recipe for pysqlite, in
    the "begin" event): they take SQLite's one write lock before their first read, so two
    processes can never both search and then both insert on what each read alone (a
    conditional create, an Idempotency-Key). Other transactions keep the driver's own
    handling, a deferred BEGIN just before the first write, so reads never wait for writers."""
    dbapi_connection = connection.connection.dbapi_connection
    immediate = connection.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE, False)
    driver_begins = None if immediate else ""  # None: the driver emits no BEGIN of its own
    if dbapi_connection.isolation_level != driver_begins:
        dbapi_connection.isolation_level = driver_begins
    if immediate:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(settings: Settings) -> AsyncEngine:
    # A pool smaller than the requests in flight closes a connection after each use beyond
    # it and opens a new one for the next (on SQLite a new thread and PRAGMAs, on PostgreSQL a
    # new session): under 16 concurrent reads that was 4 connects in 10 requests.
    pool: dict[str, Any] = {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
    }
    if settings.is_sqlite:
        if make_url(settings.database_url).database in (None, "", ":memory:"):
            pool = {}  # one shared in-memory connection (SQLAlchemy's StaticPool): no sizes
        engine = create_async_engine(
            settings.database_url, connect_args={"factory": _SqliteConnection}, **pool
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
        return engine
    if settings.database_pgbouncer_transaction_pooling:
        return create_async_engine(
            settings.database_url, poolclass=NullPool, connect_args=PGBOUNCER_CONNECT_ARGS
        )
    return create_async_engine(settings.database_url, **pool)


# PgBouncer in transaction pooling hands each transaction to any server connection, where a
# statement prepared and cached on another one does not exist. So: no statement cache in
# asyncpg or in SQLAlchemy's dialect, a unique name for each statement the dialect must
# still prepare, and no pool of our own (PgBouncer is the pool). See SQLAlchemy's asyncpg
# dialect docs, "Prepared Statement Name with PGBouncer", and asyncpg's FAQ.
PGBOUNCER_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
}


class Database:
    """The engine, its session factory, and (on SQLite) the process-wide write lock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.units_of_work = async_sessionmaker(
            self.engine, class_=UnitOfWork, expire_on_commit=False
        )
        # SQLite has a single writer, and a deferred transaction that upgrades from read to
        # write fails at once with "database is locked" rather than waiting. Serializing
        # write transactions inside the process avoids that; PostgreSQL needs no such lock.
        self._write_lock = asyncio.Lock() if settings.is_sqlite else None
        # Write transactions begin IMMEDIATE on SQLite, which orders them across processes
        # too (the lock above only orders those of one process).
        self._writer = self.engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        # One statement needs no transaction around it: on PostgreSQL, without one, a read
        # costs one round trip, not three (BEGIN, the SELECT, and the ROLLBACK when the pool
        # takes it back). On SQLite a read opens no transaction of its own, and switching the
        # isolation level on each checkout and return (two hops to aiosqlite's thread) doubled
        # a read's time: 562 us in a transaction, 1,071 us in autocommit.
        self._autocommit = (
            self.engine
            if settings.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @asynccontextmanager
    async def unit_of_work(self, *, write: bool = True) -> AsyncIterator[UnitOfWork]:
        """A case change: `UnitOfWork.commit()` (projection, versions, outbox, commit) when the
        block ends, a rollback on any exception. For the request and job boundaries."""
        lock = self._write_lock if write and self._write_lock is not None else nullcontext()
        bind = self._writer if write else self.engine
        async with lock, self.units_of_work(bind=bind) as unit:
            yield unit
            await unit.commit()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A plain transaction for work that changes no case (keys, tokens, claims, audit,
        reads): commits on success, rolls back on any exception; projects nothing."""
        lock = self._write_lock if write and self._write_lock is not None else nullcontext()
        bind = self._writer if write else self.engine
        async with lock, self.sessions(bind=bind) as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """A unit of work in plain Core, without an ORM session: for hot-path bookkeeping
        that changes no case (the push dispatcher's claims and finishes), where the session's
        own cost per transaction shows. Commits on success, rolls back on any exception."""
        lock = self._write_lock if write and self._write_lock is not None else nullcontext()
        async with lock, (self._writer if write else self.engine).begin() as connection:
            yield connection

    @asynccontextmanager
    async def single_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read-only statement, outside any transaction on PostgreSQL
        (autocommit): the statement sees one snapshot of its own, as it would inside a READ
        COMMITTED transaction, without the round trips that open and close one. Never for
        writes, nor for several statements that must agree with each other."""
        async with self._autocommit.connect() as connection:
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_database(request: Request) -> Database:
    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    database: Database = request.app.state.database
    return database


async def get_session(
    request: Request, database: Annotated[Database, Depends(get_database)]
) -> AsyncIterator[UnitOfWork]:
    """The request is the unit of work (/api and /fhir)."""
    async with database.unit_of_work(write=request.method not in SAFE_METHODS) as unit:
        yield unit


DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function" commits when the endpoint returns, before the response is sent: a failed
# commit must reach the client as an error, never follow a 200 it already received.
SessionDep = Annotated[UnitOfWork, Depends(get_session, scope="function")]
