"""Failures around one push stay with that push. A pair whose job cannot be read fails on
its own: the pairs claimed with it are pushed, and it is recorded as failed with the reason
(and retried like any failure) instead of rolling back the claim of every pair, again and
again. A push whose outcome cannot be recorded leaves the dispatcher running, and its pair is
claimed again when the lease runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from service.db.session import Database
from service.fhir_store.models import StoredResource
from service.push import claims
from service.push import dispatcher as dispatcher_module
from service.push.dialect import Executor
from service.push.dispatcher import PushDispatcher
from service.push.job import Pair, PushJob, load_jobs
from tests.api.case_factory import ok
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


async def assert_failed_alone(
    client: httpx.AsyncClient,
    fake: FakeEhr,
    broken: dict[str, Any],
    healthy: dict[str, Any],
    error: str,
) -> None:
    """The healthy pair was pushed; the broken one failed once, with `error` recorded."""
    statuses = {s["case_id"]: s for s in ok(await client.get("/api/push/status"))}
    assert statuses[healthy["id"]]["status"] == "synced"
    assert (statuses[broken["id"]]["status"], statuses[broken["id"]]["attempts"]) == ("failed", 1)
    assert error in statuses[broken["id"]]["last_error"]
    [plan] = fake.of_type("CarePlan")
    assert plan["identifier"][0]["value"] == healthy["id"]


async def test_a_job_that_cannot_be_read_fails_alone(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities(transaction=True))
    broken = await case_of_linked_patient(client, database, connection, "p1")
    healthy = await case_of_linked_patient(client, database, connection, "p2")
    async with database.transaction() as session:
        await session.execute(
            update(StoredResource)
            .where(
                StoredResource.case_id == broken["id"],
                StoredResource.resource_type == "CarePlan",
            )
            .values(content=b"{not json")
        )

    assert await dispatcher.run_once() == 2  # both claimed in one transaction

    await assert_failed_alone(client, fake, broken, healthy, "JSONDecodeError")


async def test_a_database_error_in_one_jobs_load_keeps_the_other_claims(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On PostgreSQL a failed statement aborts the claim's transaction (and its COMMIT silently
    rolls the leases back) unless the load is undone to a savepoint."""
    connection = await fake_connection(database, capabilities(transaction=True))
    broken = await case_of_linked_patient(client, database, connection, "p1")
    healthy = await case_of_linked_patient(client, database, connection, "p2")

    async def failing_with_broken(session: Executor, pairs: Sequence[Pair]) -> dict[Pair, Any]:
        if broken["id"] in {case_id for case_id, _ in pairs}:
            await session.execute(text("SELECT * FROM no_such_table"))
        return await load_jobs(session, pairs)

    async def failing_for_broken(session: Executor, case_id: str, connection_id: str) -> PushJob:
        [(_, job)] = (await failing_with_broken(session, [(case_id, connection_id)])).items()
        assert isinstance(job, PushJob)
        return job

    # Loaded together, then (that failing) one by one.
    monkeypatch.setattr(dispatcher_module, "load_jobs", failing_with_broken)
    monkeypatch.setattr(dispatcher_module, "load_job", failing_for_broken)
    assert await dispatcher.run_once() == 2

    await assert_failed_alone(client, fake, broken, healthy, "no_such_table")


async def test_a_push_whose_outcome_cannot_be_recorded_is_claimed_again(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection = await fake_connection(database, capabilities(transaction=True))
    case = await case_of_linked_patient(client, database, connection, "p1")
    database_away = True

    def failing_while_away(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def recording(*args: Any, **kwargs: Any) -> Any:
            if database_away:
                raise ConnectionResetError("the database went away")
            return await real(*args, **kwargs)

        return recording

    # Recorded together, then (that failing) alone: both fail.
    monkeypatch.setattr(claims, "finish_all", failing_while_away(claims.finish_all))
    monkeypatch.setattr(claims, "finish", failing_while_away(claims.finish))
    assert await dispatcher.run_once() == 1  # the dispatcher outlives it ...
    database_away = False
    assert "recording the push of case" in caplog.text
    [status] = ok(await client.get("/api/push/status"))
    assert status["status"] == "in-flight"  # ... the lease holds until it runs out ...

    await asyncio.sleep(database.settings.push_lease_seconds + 0.2)  # the lease runs out
    assert await dispatcher.run_once() == 1  # ... then the pair is pushed again

    [status] = ok(await client.get("/api/push/status"))
    assert status["status"] == "synced"
    assert len(fake.of_type("CarePlan")) == 1  # the replay wrote nothing twice
    assert case["id"] == fake.of_type("CarePlan")[0]["identifier"][0]["value"]
