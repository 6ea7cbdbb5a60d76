"""Which database a unit of work talks to, where a query must differ (row locks, upserts)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# The push's bookkeeping runs its Core statements on either.
Executor = AsyncSession | AsyncConnection


def is_postgres(executor: Executor) -> bool:
    bind = executor.get_bind() if isinstance(executor, AsyncSession) else executor
    return bind.dialect.name == "postgresql"


def savepoint(connection: AsyncConnection) -> AbstractAsyncContextManager[Any]:
    """Where one statement's failure must not take the whole transaction with it. PostgreSQL
    aborts the transaction on any failed statement (its COMMIT then silently rolls back) unless
    it is undone to a savepoint; a failed statement on SQLite leaves the transaction usable."""
    return connection.begin_nested() if is_postgres(connection) else nullcontext()
