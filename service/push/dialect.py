"""Which database a session talks to, where a query must differ (row locks, upserts)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"
