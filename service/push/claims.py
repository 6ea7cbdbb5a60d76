"""Claiming, finishing and failing pushes: every query of the dispatcher's bookkeeping.

A claim leases due `PushSync` rows (one per pair, so a pair is never pushed twice at once) and
ties the pair's undelivered outbox rows to the lease token. On PostgreSQL the claim locks with
`FOR UPDATE SKIP LOCKED`, so concurrent workers take different pairs without waiting; on
SQLite, the single writer serializes claims. An expired lease (a crashed worker) is due again.

Claims and finishes run once per push, on the hot path: their statements are built once, here,
as plain Core statements with bound parameters (building and caching a statement per call cost
more than running it), and a claim or a finish is a fixed handful of them whatever it holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Table,
    and_,
    bindparam,
    case,
    exists,
    literal,
    or_,
    select,
    tuple_,
    update,
)

from service.db.base import new_id, utcnow
from service.push.dialect import Executor, is_postgres
from service.push.job import LinkState, LocalResource, Pair, record_links_of
from service.push.models import ConflictStatus, PushConflict, PushOutboxEntry, PushSync, SyncStatus

CLAIMABLE = (SyncStatus.pending, SyncStatus.failed)

_syncs = cast(Table, PushSync.__table__)
_outboxes = cast(Table, PushOutboxEntry.__table__)
_sync, _outbox = _syncs.c, _outboxes.c
_conflict = PushConflict.__table__.c
_status = _sync.status.type


@dataclass(frozen=True)
class Claim:
    case_id: str
    connection_id: str
    token: str
    attempt: int
    throttles: int = 0


# ---- claim -------------------------------------------------------------------------------------

# One statement leases the due pairs: the queue idiom, UPDATE ... WHERE id IN (SELECT ...
# FOR UPDATE SKIP LOCKED) RETURNING, so concurrent PostgreSQL workers take different pairs
# without waiting (SQLite has no row locks and compiles no FOR UPDATE: its single writer
# serializes claims).
_DUE = (
    select(_sync.id)
    .where(
        or_(
            and_(_sync.status.in_(CLAIMABLE), _sync.next_attempt_at <= bindparam("now")),
            and_(_sync.status == SyncStatus.in_flight, _sync.lease_expires_at < bindparam("now")),
        )
    )
    .order_by(_sync.next_attempt_at)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
_LEASE = (
    update(_syncs)
    .where(_sync.id.in_(_DUE.scalar_subquery()))
    .values(
        status=SyncStatus.in_flight,
        lease_token=bindparam("token"),
        lease_expires_at=bindparam("expires"),
        attempts=_sync.attempts + 1,
    )
    .returning(
        _sync.case_id, _sync.connection_id, _sync.attempts, _sync.throttles, _sync.next_attempt_at
    )
)
# Every undelivered outbox row of a pair just leased joins the push (coalesced). Run once per
# pair, so that it reads the pair's index whatever the outbox holds (delivered rows are kept).
_TIE_OUTBOX = (
    update(_outboxes)
    .where(
        _outbox.case_id == bindparam("the_case"),
        _outbox.connection_id == bindparam("the_connection"),
        _outbox.delivered_at.is_(None),
    )
    .values(claim_token=bindparam("token"))
)


async def claim_due(
    session: Executor, worker_limit: int, lease_seconds: float, now: dt.datetime | None = None
) -> list[Claim]:
    """Lease up to `worker_limit` due pairs. The pairs of one claim share its lease token;
    every later query names the pair as well."""
    moment = now or utcnow()
    token = new_id()
    expires = moment + dt.timedelta(seconds=lease_seconds)
    leased = (
        await session.execute(
            _LEASE, {"now": moment, "limit": worker_limit, "token": token, "expires": expires}
        )
    ).all()
    if not leased:
        return []
    pairs = sorted({(row.case_id, row.connection_id) for row in leased})  # in lock order
    await session.execute(
        _TIE_OUTBOX,
        [{"the_case": case, "the_connection": to, "token": token} for case, to in pairs],
    )
    # RETURNING keeps no order on PostgreSQL: the pair due first is pushed first.
    return [
        Claim(row.case_id, row.connection_id, token, row.attempts, row.throttles)
        for row in sorted(leased, key=lambda row: row.next_attempt_at)
    ]


# ---- while it runs -----------------------------------------------------------------------------

_OF_THE_CLAIM = and_(
    _sync.case_id == bindparam("the_case"),
    _sync.connection_id == bindparam("the_connection"),
    _sync.lease_token == bindparam("token"),
)
_RENEW = update(_syncs).where(_OF_THE_CLAIM).values(lease_expires_at=bindparam("expires"))


def _params(claim: Claim) -> dict[str, Any]:
    return {"the_case": claim.case_id, "the_connection": claim.connection_id, "token": claim.token}


async def renew(
    session: Executor, claim: Claim, lease_seconds: float, now: dt.datetime | None = None
) -> bool:
    """Extend a lease still held (a long push); False when another worker has taken it."""
    expires = (now or utcnow()) + dt.timedelta(seconds=lease_seconds)
    result = await session.execute(_RENEW, {**_params(claim), "expires": expires})
    return bool(getattr(result, "rowcount", 0))


# ---- finish ------------------------------------------------------------------------------------


# The pairs of some claims whose leases are still theirs. On PostgreSQL their rows stay locked
# from here on, taken in pair order as every writer takes them: an outbox row committed
# meanwhile (its writer locks the same row first) is then seen by the statements that follow,
# never missed. A lock, not a write: a row written twice in one transaction has its foreign
# keys checked again, which would wait on a case row an API write holds while that write waits
# on this one. SQLite's single writer needs no lock (it renders no FOR UPDATE).
def _held(*order: Any) -> Any:
    return (
        select(_sync.case_id, _sync.connection_id, _sync.lease_token)
        .where(
            # The cases alone as well: what SQLite can look up in the pair index.
            _sync.case_id.in_(bindparam("cases", expanding=True)),
            tuple_(_sync.case_id, _sync.connection_id, _sync.lease_token).in_(
                bindparam("claims", expanding=True)
            ),
        )
        .order_by(*order)
        .with_for_update()
    )


# The writers sort pairs in Python, by code point: PostgreSQL locks in that order under its
# "C" collation, whatever the database's own.
_HELD = {
    "postgresql": _held(_sync.case_id.collate("C"), _sync.connection_id.collate("C")),
    "sqlite": _held(_sync.case_id, _sync.connection_id),
}
_DELIVERED = (
    update(_outboxes)
    .where(
        _outbox.claim_token == bindparam("token"),
        _outbox.case_id == bindparam("the_case"),
        _outbox.connection_id == bindparam("the_connection"),
        _outbox.delivered_at.is_(None),
    )
    .values(delivered_at=bindparam("now"))
)
_PARKED = exists().where(
    _conflict.case_id == bindparam("the_case"),
    _conflict.connection_id == bindparam("the_connection"),
    _conflict.status == ConflictStatus.open,
)
_NEWER = exists().where(
    _outbox.case_id == bindparam("the_case"),
    _outbox.connection_id == bindparam("the_connection"),
    _outbox.delivered_at.is_(None),
)
_VERSION = bindparam("version", type_=Integer)
# A push that delivered no plan (none changed, or the CarePlan waits on a conflict) keeps the
# version it last synced.
_KEEPS_VERSION = _VERSION.is_(None)
_SETTLE = (
    update(_syncs)
    .where(_OF_THE_CLAIM)
    .values(
        # A change that came in during the push is pushed next, open conflicts or not: they
        # hold back only their own resources.
        status=case(
            (_NEWER, literal(SyncStatus.pending, _status)),
            (_PARKED, literal(SyncStatus.conflict, _status)),
            else_=bindparam("done", type_=_status),
        ),
        synced_version=case((_KEEPS_VERSION, _sync.synced_version), else_=_VERSION),
        synced_at=case(
            (_KEEPS_VERSION, _sync.synced_at), else_=bindparam("now", type_=_sync.synced_at.type)
        ),
        unsupported=bindparam("unsupported_types", type_=_sync.unsupported.type),
        attempts=0,
        throttles=0,
        next_attempt_at=bindparam("now"),
        lease_token=None,
        lease_expires_at=None,
        last_error=None,
    )
)
_STATUS = select(_sync.status).where(
    _sync.case_id == bindparam("the_case"), _sync.connection_id == bindparam("the_connection")
)


@dataclass(frozen=True)
class Finish:
    """A push that ended well, to be recorded."""

    claim: Claim
    synced_version: int | None
    unsupported: dict[str, str]
    links: Sequence[tuple[LocalResource, LinkState]] = ()


def pair_of(claim: Claim) -> Pair:
    return claim.case_id, claim.connection_id


async def hold(session: Executor, held: Sequence[Claim]) -> set[Claim]:
    """The claims of `held` whose leases are still theirs (by token: a lease that ran out and
    the later claim of its pair are told apart), their pairs this transaction's until it ends
    (see `_HELD`). A round takes all its pairs at once, so that its writes never lock them out
    of order."""
    if not held:
        return set()
    found = await session.execute(
        _HELD["postgresql" if is_postgres(session) else "sqlite"],
        {
            "cases": sorted({c.case_id for c in held}),
            "claims": [(c.case_id, c.connection_id, c.token) for c in held],
        },
    )
    leases = {(row.case_id, row.connection_id, row.lease_token) for row in found}
    return {c for c in held if (c.case_id, c.connection_id, c.token) in leases}


async def finish_all(
    session: Executor, finishes: Sequence[Finish], held: set[Claim]
) -> list[Claim]:
    """Record pushes that ended well, whatever their number in four statements: their links,
    their claimed outbox rows delivered, each pair's status. `held`: what `hold` returned in
    this transaction. Returns the claims whose leases were lost: their outbox rows were tied to
    the new lease's token, so none is marked delivered here, and their pairs are not settled;
    their links are recorded all the same (they are true)."""
    await record_links_of(session, [(f.claim.connection_id, f.links) for f in finishes])
    kept = sorted((f for f in finishes if f.claim in held), key=lambda f: pair_of(f.claim))
    if kept:
        now = utcnow()
        await session.execute(_DELIVERED, [{**_params(f.claim), "now": now} for f in kept])
        await session.execute(_SETTLE, [_settled(f, now) for f in kept])
    return [f.claim for f in finishes if f.claim not in held]


def _settled(finish: Finish, now: dt.datetime) -> dict[str, Any]:
    delivered_no_plan = "CarePlan" in finish.unsupported and finish.synced_version is None
    return {
        **_params(finish.claim),
        "now": now,
        "done": SyncStatus.unsupported if delivered_no_plan else SyncStatus.synced,
        "version": finish.synced_version,
        "unsupported_types": dict(finish.unsupported),
    }


async def finish(session: Executor, finished: Finish) -> SyncStatus | None:
    """Record one push that ended well (see `finish_all`) and return its pair's status. None:
    the lease was lost."""
    held = await hold(session, [finished.claim])
    if await finish_all(session, [finished], held):
        return None
    status: SyncStatus | None = await session.scalar(_STATUS, _params(finished.claim))
    return status


# ---- release -----------------------------------------------------------------------------------

_RELEASE = (
    update(_syncs)
    .where(_OF_THE_CLAIM)
    .values(
        status=literal(SyncStatus.pending, _status),
        attempts=_sync.attempts - 1,
        lease_token=None,
        lease_expires_at=None,
    )
)


async def release(session: Executor, claim: Claim) -> None:
    """Give back a claim that was never pushed (a dispatcher stopping): due again at once,
    for any worker, and the attempt it counted is not one."""
    await session.execute(_RELEASE, _params(claim))


# ---- fail -------------------------------------------------------------------------------------

_OUT_OF_ATTEMPTS = _sync.attempts >= bindparam("max_attempts", type_=Integer)
_FAIL = (
    update(_syncs)
    .where(_OF_THE_CLAIM)
    .values(
        status=case(
            (_OUT_OF_ATTEMPTS, literal(SyncStatus.dead, _status)),
            else_=literal(SyncStatus.failed, _status),
        ),
        # A dead pair waits for a replay, not for a time.
        next_attempt_at=case(
            (_OUT_OF_ATTEMPTS, _sync.next_attempt_at),
            else_=bindparam("retry_at", type_=_sync.next_attempt_at.type),
        ),
        last_error=bindparam("error"),
        lease_token=None,
        lease_expires_at=None,
    )
    .returning(_sync.status)
)


async def fail(
    session: Executor,
    claim: Claim,
    error: str,
    *,
    retry_in: float,
    max_attempts: int,
) -> SyncStatus | None:
    """Record a failed push: retried after `retry_in` seconds, or dead once the attempts run
    out. None: the lease was lost."""
    status: SyncStatus | None = await session.scalar(
        _FAIL,
        {
            **_params(claim),
            "error": error[:2000],
            "max_attempts": max_attempts,
            "retry_at": utcnow() + dt.timedelta(seconds=retry_in),
        },
    )
    return status


# ---- throttled ---------------------------------------------------------------------------------

_THROTTLED = (
    update(_syncs)
    .where(_OF_THE_CLAIM)
    .values(
        status=literal(SyncStatus.failed, _status),
        # The claim counted an attempt; being throttled is not one.
        attempts=_sync.attempts - 1,
        throttles=_sync.throttles + 1,
        next_attempt_at=bindparam("retry_at", type_=_sync.next_attempt_at.type),
        last_error=bindparam("error"),
        lease_token=None,
        lease_expires_at=None,
    )
    .returning(_sync.status)
)


async def throttled(
    session: Executor, claim: Claim, error: str, *, retry_in: float
) -> SyncStatus | None:
    """Record a push the EHR throttled (429) or its open circuit held back: retried after
    `retry_in` seconds, never dead-lettered for it. None: the lease was lost."""
    status: SyncStatus | None = await session.scalar(
        _THROTTLED,
        {
            **_params(claim),
            "error": error[:2000],
            "retry_at": utcnow() + dt.timedelta(seconds=retry_in),
        },
    )
    return status
