"""The dispatcher's rounds: a push hands its outcome back and the next round records every
outcome that came in, together with the next claim, in one transaction. A round that fails
still records its outcomes, one by one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from service.db.session import Database
from service.push import claims
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


async def statuses(client: httpx.AsyncClient) -> dict[str, str]:
    return {s["case_id"]: s["status"] for s in ok(await client.get("/api/push/status"))}


async def test_the_outcomes_of_pushes_are_recorded_together(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities(transaction=True))
    await case_of_linked_patient(client, database, connection, "p0")
    assert await dispatcher.run_once() == 1  # the connection's client is made (and cached)
    cases = [await case_of_linked_patient(client, database, connection, f"p{n}") for n in (1, 2, 3)]
    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    event.listen(database.engine.sync_engine, "commit", count)
    try:
        assert await dispatcher.run_once() == 3
    finally:
        event.remove(database.engine.sync_engine, "commit", count)

    # One commit claims the three, one records the three; the Bundles record nothing alone.
    assert len(commits) == 2
    synced = await statuses(client)
    assert [synced[case["id"]] for case in cases] == ["synced"] * 3
    assert len(fake.of_type("CarePlan")) == 4


async def test_a_failed_round_still_records_its_outcomes(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The round after a push records its outcome and claims again; when that claim fails,
    the transaction rolls back, and the outcome is recorded on its own rather than lost (the
    pair would stay in flight until its lease ran out)."""
    connection = await fake_connection(database, capabilities(transaction=True))
    case = await case_of_linked_patient(client, database, connection, "p1")
    real_claim_due = claims.claim_due
    calls = 0

    async def second_claim_fails(*args: Any, **kwargs: Any) -> list[claims.Claim]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionResetError("the database went away")
        return await real_claim_due(*args, **kwargs)

    monkeypatch.setattr(claims, "claim_due", second_claim_fails)
    dispatcher.start()
    async with asyncio.timeout(database.settings.push_lease_seconds / 2):
        while (await statuses(client)).get(case["id"]) != "synced":
            await asyncio.sleep(0.02)

    assert calls >= 2
    assert "a push round failed; its outcomes are recorded one by one" in caplog.text
    assert len(fake.of_type("CarePlan")) == 1
