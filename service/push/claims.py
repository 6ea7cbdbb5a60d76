"""Claiming, finishing and failing pushes: every query of the dispatcher's bookkeeping.

A claim leases due `PushSync` rows (one per pair, so a pair is never pushed twice at once) and
ties the pair's undelivered outbox rows to the lease token. On PostgreSQL the claim locks with
`FOR UPDATE SKIP LOCKED`, so concurrent workers take different pairs without waiting; on
SQLite, the single writer serializes claims. An expired lease (a crashed worker) is due again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.base import new_id, utcnow
from service.push.dialect import is_postgres
from service.push.job import LinkState, LocalResource, record_pushed
from service.push.models import ConflictStatus, PushConflict, PushOutboxEntry, PushSync, SyncStatus

CLAIMABLE = (SyncStatus.pending, SyncStatus.failed)


@dataclass(frozen=True)
class Claim:
    case_id: str
    connection_id: str
    token: str
    attempt: int


async def claim_due(
    session: AsyncSession, worker_limit: int, lease_seconds: float, now: dt.datetime | None = None
) -> list[Claim]:
    moment = now or utcnow()
    query = (
        select(PushSync)
        .where(
            or_(
                and_(PushSync.status.in_(CLAIMABLE), PushSync.next_attempt_at <= moment),
                and_(PushSync.status == SyncStatus.in_flight, PushSync.lease_expires_at < moment),
            )
        )
        .order_by(PushSync.next_attempt_at)
        .limit(worker_limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    claims = []
    for row in await session.scalars(query):
        token = new_id()
        row.status = SyncStatus.in_flight
        row.lease_token = token
        row.lease_expires_at = moment + dt.timedelta(seconds=lease_seconds)
        row.attempts += 1
        await session.execute(
            update(PushOutboxEntry)
            .where(
                PushOutboxEntry.case_id == row.case_id,
                PushOutboxEntry.connection_id == row.connection_id,
                PushOutboxEntry.delivered_at.is_(None),
            )
            .values(claim_token=token)
        )
        claims.append(Claim(row.case_id, row.connection_id, token, row.attempts))
    await session.flush()
    return claims


async def renew(
    session: AsyncSession, claim: Claim, lease_seconds: float, now: dt.datetime | None = None
) -> bool:
    """Extend a lease still held (a long push); False when another worker has taken it."""
    moment = now or utcnow()
    result = await session.execute(
        update(PushSync)
        .where(
            PushSync.case_id == claim.case_id,
            PushSync.connection_id == claim.connection_id,
            PushSync.lease_token == claim.token,
        )
        .values(lease_expires_at=moment + dt.timedelta(seconds=lease_seconds))
    )
    return bool(getattr(result, "rowcount", 0))


async def _leased(session: AsyncSession, claim: Claim) -> PushSync | None:
    """The pair's sync row if the claim still holds its lease (else another worker took over)."""
    query = select(PushSync).where(
        PushSync.case_id == claim.case_id,
        PushSync.connection_id == claim.connection_id,
        PushSync.lease_token == claim.token,
    )
    if is_postgres(session):
        query = query.with_for_update()
    return await session.scalar(query)


async def finish(
    session: AsyncSession,
    claim: Claim,
    *,
    synced_version: int | None,
    unsupported: dict[str, str],
    links: Sequence[tuple[LocalResource, LinkState]] = (),
) -> SyncStatus | None:
    """Record the push's links, mark the claimed outbox rows delivered and set the pair's
    status. None: the lease was lost (the links are recorded all the same: they are true)."""
    for resource, state in links:
        await record_pushed(session, claim.connection_id, resource, state)
    row = await _leased(session, claim)
    if row is None:
        return None
    now = utcnow()
    await session.execute(
        update(PushOutboxEntry)
        .where(PushOutboxEntry.claim_token == claim.token, PushOutboxEntry.delivered_at.is_(None))
        .values(delivered_at=now)
    )
    newer = await session.scalar(
        select(
            exists().where(
                PushOutboxEntry.case_id == claim.case_id,
                PushOutboxEntry.connection_id == claim.connection_id,
                PushOutboxEntry.delivered_at.is_(None),
            )
        )
    )
    parked = await session.scalar(
        select(
            exists().where(
                PushConflict.case_id == claim.case_id,
                PushConflict.connection_id == claim.connection_id,
                PushConflict.status == ConflictStatus.open,
            )
        )
    )
    if parked:
        row.status = SyncStatus.conflict
    elif newer:
        row.status = SyncStatus.pending
    elif "CarePlan" in unsupported and synced_version is None:
        row.status = SyncStatus.unsupported
    else:
        row.status = SyncStatus.synced
    if synced_version is not None and not parked:
        row.synced_version = synced_version
        row.synced_at = now
    row.unsupported = dict(unsupported)
    row.attempts = 0
    row.next_attempt_at = now
    row.lease_token = None
    row.lease_expires_at = None
    row.last_error = None
    await session.flush()
    return row.status


async def fail(
    session: AsyncSession,
    claim: Claim,
    error: str,
    *,
    retry_in: float,
    max_attempts: int,
) -> SyncStatus | None:
    row = await _leased(session, claim)
    if row is None:
        return None
    row.last_error = error[:2000]
    row.lease_token = None
    row.lease_expires_at = None
    if row.attempts >= max_attempts:
        row.status = SyncStatus.dead
    else:
        row.status = SyncStatus.failed
        row.next_attempt_at = utcnow() + dt.timedelta(seconds=retry_in)
    await session.flush()
    return row.status
