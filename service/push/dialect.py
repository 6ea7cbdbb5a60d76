"""Which database a unit of work talks to, where a query must differ (row locks, upserts)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# The push's bookkeeping runs its Core statements on either.
Executor = AsyncSession | AsyncConnection


def is_postgres(executor: Executor) -> bool:
    bind = executor.get_bind() if isinstance(executor, AsyncSession) else executor
    return bind.dialect.name == "postgresql"
