"""Every query on the shared token buckets.

A take is one atomic `UPDATE ... RETURNING` (SQLite 3.35+, PostgreSQL): the row lock (or
SQLite's single writer) orders concurrent takes from any process, and the refill is computed
from the stored level and time inside the statement, so no read-modify-write race exists.
Only plain `CASE` is used (no LEAST/GREATEST, whose names differ between the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from service.admission.models import RateLimitBucket

_buckets = cast(sa.Table, RateLimitBucket.__table__)


@dataclass(frozen=True)
class Take:
    granted: int  # tokens handed out: 0, 1 or the lease asked for
    tokens: float  # the level left in the bucket after the take


def _double(value: float) -> sa.ColumnElement[float]:
    return sa.literal(value, sa.Double())


def _take_statement(key: str, now: float, rate: float, burst: int, lease: int) -> sa.Update:
    tokens, updated_at = _buckets.c.tokens, _buckets.c.updated_at
    at = _double(now)
    elapsed = sa.case((at > updated_at, at - updated_at), else_=_double(0.0))
    refilled = tokens + elapsed * _double(rate)
    level = sa.case((refilled > _double(burst), _double(burst)), else_=refilled)
    granted = sa.case((level >= lease, lease), (level >= 1, 1), else_=0)
    return (
        sa.update(_buckets)
        .where(_buckets.c.key == key)
        .values(
            tokens=level - granted,
            # A process whose clock lags must not move the bucket back in time.
            updated_at=sa.case((at > updated_at, at), else_=updated_at),
            granted=granted,
        )
        .returning(_buckets.c.granted, _buckets.c.tokens)
    )


async def take(
    connection: AsyncConnection, key: str, now: float, rate: float, burst: int, lease: int
) -> Take:
    """Take `lease` tokens from the bucket `key` (or 1 when fewer are left, or none)."""
    statement = _take_statement(key, now, rate, burst, lease)
    row = (await connection.execute(statement)).one_or_none()
    if row is None:
        # A missing row is a full bucket: create it, then take (another process may have
        # created it in between; the conflict clause lets either win).
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        await connection.execute(
            insert(_buckets)
            .values(key=key, tokens=float(burst), updated_at=now, granted=0)
            .on_conflict_do_nothing(index_elements=[_buckets.c.key])
        )
        row = (await connection.execute(statement)).one()
    return Take(granted=int(row.granted), tokens=float(row.tokens))


async def purge_full_buckets(connection: AsyncConnection, untouched_since: float) -> int:
    """Delete buckets nobody took from since `untouched_since`, by when every bucket has
    refilled: a missing row is a full bucket, so this changes no limit."""
    result = await connection.execute(
        sa.delete(_buckets).where(_buckets.c.updated_at < untouched_since)
    )
    return int(result.rowcount)
