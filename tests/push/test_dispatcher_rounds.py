"""The dispatcher's rounds: a push hands its outcome back and the next round records every
outcome that came in, together with the next claim, in one transaction. A round that fails
still records its outcomes, one by one. Claimed pushes wait for a place; as many as there
are places are claimed ahead of them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from service.db.session import Database
from service.links.models import ResourceLink
from service.push import claims
from service.push import dispatcher as dispatcher_module
from service.push.dispatcher import PushDispatcher
from service.push.job import PUSH_ORDER
from service.push.models import PushOutboxEntry
from service.push.pusher import push_pair as real_push_pair
from tests.api.case_factory import ok, patch_case
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


async def test_a_round_reads_and_records_its_pushes_in_one_statement_each_step(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    """The claimed pairs' cases and resources read; then the pushes that ended well: their
    pairs taken, links stored, outbox rows delivered, statuses set, their audit records
    written. One statement for each, however many pushes the round holds."""
    connection = await fake_connection(database, capabilities(transaction=True))
    cases = [await case_of_linked_patient(client, database, connection, f"p{n}") for n in (1, 2, 3)]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await dispatcher.run_once() == 3
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)

    def run(prefix: str) -> int:
        return sum(statement.startswith(prefix) for statement in statements)

    audit_read = "SELECT cases.id, cases.patient_id FROM"  # the pushed cases' patients
    assert run(audit_read) == 1
    assert run("SELECT cases.id") - run(audit_read) == 1
    assert run("INSERT INTO audit_events") == 1
    assert run("INSERT INTO audit_event_patients") == 1
    assert run("SELECT fhir_resources.case_id") == 2  # the cases' resources; who they name
    assert run("SELECT push_syncs.case_id, push_syncs.connection_id, push_syncs.lease_") == 1
    assert run("INSERT INTO ehr_resource_links") == 1
    assert run("UPDATE push_outbox SET delivered_at") == 1
    assert run("UPDATE push_syncs SET status") == 2  # one claims, one settles the three
    synced = await statuses(client)
    assert [synced[case["id"]] for case in cases] == ["synced"] * 3
    async with database.transaction(write=False) as session:
        links = await session.scalar(select(func.count()).select_from(ResourceLink))
    written = [r for t in PUSH_ORDER for r in fake.of_type(t)]
    assert len(fake.of_type("CarePlan")) == 3
    assert links == len(written)  # one per resource written


async def test_pushes_that_cannot_be_recorded_together_are_recorded_alone(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The batch fails after some of its statements ran (undone to its savepoint on
    PostgreSQL, kept on SQLite): each push is then recorded on its own, completely."""
    connection = await fake_connection(database, capabilities(transaction=True))
    cases = [await case_of_linked_patient(client, database, connection, f"p{n}") for n in (1, 2)]

    def settling_together_fails(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool
    ) -> None:
        # Half way through the batch: its outbox rows are marked delivered by now.
        if many and statement.startswith("UPDATE push_syncs SET status"):
            raise ConnectionResetError("the statement failed")

    event.listen(database.engine.sync_engine, "before_cursor_execute", settling_together_fails)
    try:
        assert await dispatcher.run_once() == 2
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", settling_together_fails)

    assert "recording 2 pushes together failed" in caplog.text
    synced = await statuses(client)
    assert [synced[case["id"]] for case in cases] == ["synced"] * 2
    assert len(fake.of_type("CarePlan")) == 2
    async with database.transaction(write=False) as session:
        undelivered = await session.scalar(
            select(func.count())
            .select_from(PushOutboxEntry)
            .where(PushOutboxEntry.delivered_at.is_(None))
        )
    assert undelivered == 0


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
    pair would stay in flight until its lease ran out, then be pushed again)."""
    connection = await fake_connection(database, capabilities(transaction=True))
    case = await case_of_linked_patient(client, database, connection, "p1")
    real_claim_due = claims.claim_due
    claimed_once = False
    pushes = 0

    async def claims_fail_after_the_first(*args: Any, **kwargs: Any) -> list[claims.Claim]:
        nonlocal claimed_once
        if claimed_once:
            raise ConnectionResetError("the database went away")
        claimed_once = True
        return await real_claim_due(*args, **kwargs)

    async def counted_push_pair(*args: Any, **kwargs: Any) -> Any:
        nonlocal pushes
        pushes += 1
        return await real_push_pair(*args, **kwargs)

    monkeypatch.setattr(claims, "claim_due", claims_fail_after_the_first)
    monkeypatch.setattr(dispatcher_module, "push_pair", counted_push_pair)
    dispatcher.start()
    async with asyncio.timeout(30):  # a guard against a hang only
        while (await statuses(client)).get(case["id"]) != "synced":
            await asyncio.sleep(0.02)

    assert "a push round failed; its outcomes are recorded one by one" in caplog.text
    assert pushes == 1  # recorded from the first push, not after a second one
    assert len(fake.of_type("CarePlan")) == 1


async def test_a_pair_settled_back_to_pending_is_claimed_by_a_later_round(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change that came in during a push leaves its pair pending. The round that records
    this does not lease the pair again in the same transaction (on PostgreSQL that would check
    the row's foreign keys again, waiting on a case row an API write may hold while it waits on
    the pair); a later round does."""
    connection = await fake_connection(database, capabilities(transaction=True))
    case = await case_of_linked_patient(client, database, connection, "p1")
    pushes = 0
    settled_in: dict[int, set[tuple[str, str]]] = {}
    claimed_where_settled: list[claims.Claim] = []
    real_finish_all, real_claim_due = claims.finish_all, claims.claim_due

    async def changed_during_the_first(*args: Any, **kwargs: Any) -> Any:
        nonlocal pushes
        pushes += 1
        pushed = await real_push_pair(*args, **kwargs)
        if pushes == 1:
            current = ok(await client.get(f"/api/cases/{case['id']}"))
            ok(await patch_case(client, current, title="Changed meanwhile"))
        return pushed

    async def finish_all(session: Any, finishes: Any, held: Any) -> list[claims.Claim]:
        settled_in[id(session)] = {claims.pair_of(f.claim) for f in finishes}
        return await real_finish_all(session, finishes, held)

    async def claim_due(session: Any, *args: Any) -> list[claims.Claim]:
        claimed = await real_claim_due(session, *args)
        settled = settled_in.pop(id(session), set())
        claimed_where_settled.extend(c for c in claimed if claims.pair_of(c) in settled)
        return claimed

    monkeypatch.setattr(dispatcher_module, "push_pair", changed_during_the_first)
    monkeypatch.setattr(claims, "finish_all", finish_all)
    monkeypatch.setattr(claims, "claim_due", claim_due)
    dispatcher.start()
    async with asyncio.timeout(30):  # a guard against a hang only
        while pushes < 2 or (await statuses(client)).get(case["id"]) != "synced":
            await asyncio.sleep(0.02)

    assert pushes == 2
    assert claimed_where_settled == []


async def test_claimed_pushes_wait_for_a_place(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No more than `push_concurrency` pushes run at once; as many more are claimed (and their
    jobs loaded) behind them, so a place that frees is taken without waiting for a round."""
    settings = database.settings.model_copy(update={"push_concurrency": 2})
    monkeypatch.setattr(database, "settings", settings)
    connection = await fake_connection(database, capabilities(transaction=True))
    cases = [await case_of_linked_patient(client, database, connection, f"p{n}") for n in range(5)]
    running = most_running = 0
    most_in_flight = 0

    async def slow_push_pair(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, most_running, most_in_flight
        running += 1
        most_running = max(most_running, running)
        in_flight = [
            s for s in ok(await client.get("/api/push/status")) if s["status"] == "in-flight"
        ]
        most_in_flight = max(most_in_flight, len(in_flight))
        await asyncio.sleep(0.05)
        try:
            return await real_push_pair(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(dispatcher_module, "push_pair", slow_push_pair)
    pusher = PushDispatcher(database)
    pusher.start()
    try:
        async with asyncio.timeout(30):  # a guard against a hang only
            while set((await statuses(client)).values()) != {"synced"}:
                await asyncio.sleep(0.02)
    finally:
        await pusher.close()

    assert most_running == 2
    assert most_in_flight == 4  # two pushing, two claimed behind them
    assert len(fake.of_type("CarePlan")) == len(cases)


async def test_an_outcome_is_recorded_within_the_poll_interval_while_others_run(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rounds wait for a batch of outcomes, but not for slow pushes: an ended push's outcome
    is recorded within the poll interval."""
    settings = database.settings.model_copy(
        update={"push_concurrency": 2, "push_poll_seconds": 0.1}
    )
    monkeypatch.setattr(database, "settings", settings)
    connection = await fake_connection(database, capabilities(transaction=True))
    fast = await case_of_linked_patient(client, database, connection, "fast")
    for n in range(3):
        await case_of_linked_patient(client, database, connection, f"slow{n}")

    async def push_pair_slow_but_one(*args: Any, **kwargs: Any) -> Any:
        job = args[3]
        if job.case_id != fast["id"]:
            await asyncio.sleep(3)
        return await real_push_pair(*args, **kwargs)

    monkeypatch.setattr(dispatcher_module, "push_pair", push_pair_slow_but_one)
    pusher = PushDispatcher(database)
    pusher.start()
    try:
        async with asyncio.timeout(30):  # a guard against a hang only
            while (await statuses(client))[fast["id"]] != "synced":
                await asyncio.sleep(0.02)
        # Recorded while the slow ones still run (without the bound: only once one had ended).
        assert list((await statuses(client)).values()).count("in-flight") == 3
    finally:
        await pusher.close()
    # Stopping, the two running pushes end and are recorded; the one still waiting for a place
    # gives its claim back, its attempt uncounted.
    ended = ok(await client.get("/api/push/status"))
    assert sorted(s["status"] for s in ended) == ["pending", "synced", "synced", "synced"]
    assert [s["attempts"] for s in ended if s["status"] == "pending"] == [0]
