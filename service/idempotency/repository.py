"""Every query on `idempotency_keys`. Each guarded write says whether it took effect (its
WHERE decides who wins a race, not a read made before it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.idempotency.models import IdempotencyKey

PRUNE_BATCH = 100

_keys = cast(Table, IdempotencyKey.__table__)
_key = _keys.c


@dataclass(frozen=True)
class KeyState:
    fingerprint: str
    token: str
    lease_until: dt.datetime
    expires_at: dt.datetime
    status_code: int | None
    headers: dict[str, Any] | None
    body: bytes | None
    audit: dict[str, Any] | None


@dataclass(frozen=True)
class Reservation:
    """A request's hold on a key: what it asks (`fingerprint`) and until when it holds it."""

    fingerprint: str
    token: str
    lease_until: dt.datetime
    expires_at: dt.datetime


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _this(principal: str, key: str) -> Any:
    return (_key.principal == principal) & (_key.key == key)


async def key_state(session: AsyncSession, principal: str, key: str) -> KeyState | None:
    row = (
        await session.execute(
            select(
                _key.fingerprint,
                _key.token,
                _key.lease_until,
                _key.expires_at,
                _key.status_code,
                _key.headers,
                _key.body,
                _key.audit,
            ).where(_this(principal, key))
        )
    ).one_or_none()
    return None if row is None else KeyState(*row)


async def reserve(
    session: AsyncSession,
    principal: str,
    key: str,
    reservation: Reservation,
) -> bool:
    """Insert the reservation unless the key has a row; whether it was inserted."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    result = await session.execute(
        insert(IdempotencyKey)
        .values(principal=principal, key=key, **asdict(reservation))
        .on_conflict_do_nothing(index_elements=["principal", "key"])
    )
    return _rowcount(result) == 1


async def take_over(
    session: AsyncSession,
    principal: str,
    key: str,
    reservation: Reservation,
    *,
    previous_token: str,
    now: dt.datetime,
) -> bool:
    """Reserve a key whose row has expired, or whose holder's lease ran out before it
    answered (its process died); whether this call got it."""
    result = await session.execute(
        update(_keys)
        .where(
            _this(principal, key),
            _key.token == previous_token,
            or_(
                _key.expires_at <= now,
                _key.status_code.is_(None) & (_key.lease_until <= now),
            ),
        )
        .values(**asdict(reservation), status_code=None, headers=None, body=None, audit=None)
    )
    return _rowcount(result) == 1


async def complete(
    session: AsyncSession,
    principal: str,
    key: str,
    *,
    token: str,
    status_code: int,
    headers: dict[str, str],
    body: bytes,
    expires_at: dt.datetime,
    audit: dict[str, Any] | None = None,
) -> bool:
    """Store the answer (and what it disclosed, for a replay's audit) under the holder's
    reservation; False if it is no longer held."""
    result = await session.execute(
        update(_keys)
        .where(_this(principal, key), _key.token == token, _key.status_code.is_(None))
        .values(
            status_code=status_code,
            headers=headers,
            body=body,
            audit=audit,
            expires_at=expires_at,
        )
    )
    return _rowcount(result) == 1


async def release(session: AsyncSession, principal: str, key: str, *, token: str) -> None:
    """Give up an unanswered reservation, so that a retry of the key runs afresh."""
    await session.execute(
        delete(_keys).where(_this(principal, key), _key.token == token, _key.status_code.is_(None))
    )


async def prune_expired(session: AsyncSession, now: dt.datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete up to `batch` expired keys; how many. On PostgreSQL rows another transaction
    holds are skipped (FOR UPDATE SKIP LOCKED), so concurrent prunes never wait on each other."""
    expired = (
        select(_key.principal, _key.key)
        .where(_key.expires_at <= now)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(_keys).where(tuple_(_key.principal, _key.key).in_(expired))
    )
    return _rowcount(result)
