"""Claims: one lease per (case, connection) pair, pending outbox rows coalesced into it, an
expired lease (a crashed worker) claimed again, renewal, and a lost lease refusing to finish."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import select

from service.db.base import utcnow
from service.db.session import Database
from service.push import claims
from service.push.models import PushOutboxEntry, PushSync, SyncStatus
from tests.api.case_factory import ok, patch_case
from tests.push.fake_ehr import capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient

LEASE = 30.0


async def claim(database: Database, now: dt.datetime | None = None) -> list[claims.Claim]:
    async with database.transaction() as session:
        return await claims.claim_due(session, 10, LEASE, now)


async def test_a_pair_is_claimed_once_with_its_pending_rows_coalesced(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    ok(await patch_case(client, case, title="Changed"))

    [first] = await claim(database)
    assert (first.case_id, first.connection_id, first.attempt) == (case["id"], connection, 1)
    assert await claim(database) == []  # in flight: not claimed twice

    async with database.transaction(write=False) as session:
        rows = list(await session.scalars(select(PushOutboxEntry)))
    assert len(rows) >= 2  # several changes ...
    assert {r.claim_token for r in rows} == {first.token}  # ... one push

    ok(await patch_case(client, ok(await client.get(f"/api/cases/{case['id']}")), title="Again"))
    async with database.transaction() as session:
        status = await claims.finish(session, claims.Finish(first, 3, {}))
    assert status is SyncStatus.pending  # a change arrived during the push: it goes again
    [second] = await claim(database)
    assert second.token != first.token
    async with database.transaction(write=False) as session:
        unclaimed = await session.scalars(
            select(PushOutboxEntry).where(PushOutboxEntry.delivered_at.is_(None))
        )
        assert {r.claim_token for r in unclaimed} == {second.token}


async def test_an_expired_lease_is_claimed_again_and_the_old_one_cannot_finish(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    await case_of_linked_patient(client, database, connection, "p1")
    [crashed] = await claim(database)

    later = utcnow() + dt.timedelta(seconds=LEASE + 1)
    [taken_over] = await claim(database, later)
    assert taken_over.token != crashed.token
    assert taken_over.attempt == 2

    async with database.transaction() as session:
        assert not await claims.renew(session, crashed, LEASE)
        assert await claims.finish(session, claims.Finish(crashed, 1, {})) is None
        assert await claims.renew(session, taken_over, LEASE)
        done = await claims.finish(session, claims.Finish(taken_over, 1, {}))
    assert done is SyncStatus.synced
    async with database.transaction(write=False) as session:
        sync = await session.scalar(select(PushSync))
    assert sync is not None
    assert (sync.status, sync.attempts, sync.lease_token) == (SyncStatus.synced, 0, None)


async def test_a_batch_tells_the_lost_lease_from_the_later_claim_of_its_pair(
    client: httpx.AsyncClient, database: Database
) -> None:
    """A round may hold two outcomes of one pair: a claim whose lease ran out and the claim
    that took the pair over. The first is lost, the second is recorded."""
    connection = await fake_connection(database, capabilities())
    stale_case = await case_of_linked_patient(client, database, connection, "p1")
    await case_of_linked_patient(client, database, connection, "p2")
    first = {c.case_id: c for c in await claim(database)}
    crashed = first.pop(stale_case["id"])
    [running] = first.values()
    later = utcnow() + dt.timedelta(seconds=LEASE + 1)
    async with database.transaction() as session:
        assert await claims.renew(session, running, LEASE, now=later)
    [taken_over] = await claim(database, later)
    assert taken_over.case_id == stale_case["id"]
    assert taken_over.token != crashed.token

    finishes = [claims.Finish(c, 1, {}) for c in (crashed, running, taken_over)]
    async with database.transaction() as session:
        held = await claims.hold(session, [f.claim for f in finishes])
        assert held == {running, taken_over}
        assert await claims.finish_all(session, finishes, held) == [crashed]
    async with database.transaction(write=False) as session:
        syncs = list(await session.scalars(select(PushSync)))
    assert {(s.status, s.lease_token) for s in syncs} == {(SyncStatus.synced, None)}


async def test_renewal_pushes_the_expiry_forward(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    await case_of_linked_patient(client, database, connection, "p1")
    [held] = await claim(database)
    later = utcnow() + dt.timedelta(seconds=LEASE - 1)
    async with database.transaction() as session:
        assert await claims.renew(session, held, LEASE, later)
    assert await claim(database, utcnow() + dt.timedelta(seconds=LEASE + 1)) == []
