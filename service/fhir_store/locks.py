"""Serializing a search-then-create of the same criteria (FHIR R4 http.html §3.1.0.8,
conditional create): two requests that search for the same resource must not both find
nothing and both create it.

- **PostgreSQL**: a transaction-scoped advisory lock (`pg_advisory_xact_lock`) on a stable
  64-bit hash of the resource type and the normalized criteria, taken before the search. The
  second request waits until the first commits or rolls back, and its search (a new snapshot
  under READ COMMITTED) then sees what the first stored. The lock ends with the transaction,
  so a failed or crashed request leaves nothing held.
- **SQLite**: nothing to do here. Write transactions begin `IMMEDIATE` (`service.db.session`),
  so they hold the database's one write lock from their first statement: a second writer, in
  this process or another, cannot search until the first has committed.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


def advisory_key(scope: str, *parts: str) -> int:
    """A stable signed 64-bit key (PostgreSQL's bigint) for `scope` and `parts`: the first 8
    bytes of their SHA-256, the same in every process and release."""
    text = "\x1f".join((scope, *parts)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big", signed=True)


async def hold_until_commit(session: AsyncSession, scope: str, *parts: str) -> None:
    """Wait for, then hold until the end of the session's transaction, the lock of
    (`scope`, `parts`); on SQLite the write transaction already excludes other writers."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(advisory_key(scope, *parts))))


async def lock_conditional_create(
    session: AsyncSession, resource_type: str, system: str, value: str
) -> None:
    """Call before the search of a conditional create on `identifier=system|value` (the only
    criterion this server takes; see `service.fhir_engine.conditionals`)."""
    await hold_until_commit(session, "conditional-create", resource_type, system, value)
