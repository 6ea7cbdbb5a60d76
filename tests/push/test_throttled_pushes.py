"""A push the EHR throttles (429 without Retry-After, RFC 6585 §4) or whose circuit is open is
retried with a growing, jittered delay and never dead-lettered for it; a real failure still is.
The EHR is faked with respx; no real sleep (the client makes no retries of its own here)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import respx
from sqlalchemy import select, update

from service.db.base import utcnow
from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from service.push.models import PushSync, SyncStatus
from service.settings import Settings
from tests.api.case_factory import ok
from tests.conftest import settings_for
from tests.push.fake_ehr import BASE, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient

MAX_ATTEMPTS = 3
ROUNDS = 8  # more than MAX_ATTEMPTS, and more than the breaker's threshold of 5


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        push_dispatcher_enabled=False,
        allow_insecure_http=True,
        allow_private_networks=True,
        ehr_max_retries=0,
        push_max_attempts=MAX_ATTEMPTS,
        push_retry_base_seconds=10.0,
        push_retry_max_seconds=100_000.0,
    )


async def sync_row(database: Database, case_id: str) -> PushSync:
    async with database.transaction(write=False) as session:
        row = await session.scalar(select(PushSync).where(PushSync.case_id == case_id))
        assert row is not None
        return row


async def make_due(database: Database, case_id: str) -> None:
    async with database.transaction() as session:
        await session.execute(
            update(PushSync)
            .where(PushSync.case_id == case_id)
            .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
        )


async def test_throttling_alone_never_dead_letters_and_backs_off_exponentially(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    dispatcher = PushDispatcher(database)
    delays: list[float] = []
    try:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            route = ehr.route().respond(429)  # no Retry-After
            for _ in range(ROUNDS):
                await make_due(database, case["id"])
                before = utcnow()
                assert await dispatcher.run_once() == 1
                row = await sync_row(database, case["id"])
                assert row.status is SyncStatus.failed
                delays.append((row.next_attempt_at - before).total_seconds())
    finally:
        await dispatcher.close()
    row = await sync_row(database, case["id"])
    assert (row.attempts, row.throttles) == (0, ROUNDS)
    assert row.last_error is not None
    assert "EhrCircuitOpen" in row.last_error
    # The breaker opened after five 429s in a row: the later pushes sent nothing.
    assert route.call_count == 5
    # Jitter between half and all of base * 2**n: each delay at least the one before.
    assert delays == sorted(delays)
    assert delays[0] < 10.5
    assert delays[-1] >= 10.0 * 2 ** (ROUNDS - 1) / 2
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert (status["circuit"], status["throttles"]) == ("open", ROUNDS)


async def test_server_errors_still_dead_letter_after_the_attempts(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    dispatcher = PushDispatcher(database)
    try:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            ehr.route().respond(500)
            for _ in range(MAX_ATTEMPTS):
                await make_due(database, case["id"])
                await dispatcher.run_once()
    finally:
        await dispatcher.close()
    row = await sync_row(database, case["id"])
    assert (row.status, row.attempts) == (SyncStatus.dead, MAX_ATTEMPTS)
