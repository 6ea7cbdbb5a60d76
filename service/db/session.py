"""Engine and sessions. The request (or job) boundary commits; services only flush."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from service.db.unit_of_work import UnitOfWork
from service.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # In WAL mode NORMAL never corrupts the database; a power cut may lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    return create_async_engine(settings.database_url, pool_size=10, max_overflow=10)


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

    @asynccontextmanager
    async def unit_of_work(self, *, write: bool = True) -> AsyncIterator[UnitOfWork]:
        """A case change: `UnitOfWork.commit()` (projection, versions, outbox, commit) when the
        block ends, a rollback on any exception. For the request and job boundaries."""
        lock = self._write_lock if write and self._write_lock is not None else nullcontext()
        async with lock, self.units_of_work() as unit:
            yield unit
            await unit.commit()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A plain transaction for work that changes no case (keys, tokens, claims, audit,
        reads): commits on success, rolls back on any exception; projects nothing."""
        lock = self._write_lock if write and self._write_lock is not None else nullcontext()
        async with lock, self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """A unit of work in plain Core, without an ORM session: for hot-path bookkeeping
        that changes no case (the push dispatcher's claims and finishes), where the session's
        own cost per transaction shows. Commits on success, rolls back on any exception."""
        lock = self._write_lock if write and self._write_lock is not None else nullcontext()
        async with lock, self.engine.begin() as connection:
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
