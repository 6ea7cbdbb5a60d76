"""A real PostgreSQL deadlock in a request's own transaction is answered 503 with
`Retry-After`, to be retried as it was: an OperationOutcome with issue code `transient` on
`/fhir`, problem+json on `/api`; the request's change is rolled back (`service.db.transient`).

The deadlock is arranged, not left to timing: another transaction takes an advisory lock, then
waits for the case row the request holds (seen waiting in `pg_locks`); only then does the
request ask for the advisory lock. The other transaction's `deadlock_timeout` is an hour, so the
request's own deadlock check (after the server's default second) is the one that finds the
cycle, and the request is the transaction PostgreSQL ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service.cases import routes as case_routes
from service.db.session import Database
from service.fhir_engine import updates
from tests.api.case_factory import ok, open_case, patch_case
from tests.conftest import BOOTSTRAP_KEY
from tests.fhir_api.conftest import SetScopes, planned_case

ADVISORY_KEY = 4_040_001
GUARD_SECONDS = 30  # a bound on a hang, never reached when the deadlock happens as arranged


class Deadlock:
    """The other transaction, and the step the request takes once it holds the case row."""

    def __init__(self, database: Database, case_id: str) -> None:
        self.database, self.case_id = database, case_id
        self.request_holds_case = asyncio.Event()
        self.other_waits = asyncio.Event()

    async def in_request(self, session: AsyncSession) -> None:
        """Called inside the request, holding the case row: ask for what the other holds."""
        self.request_holds_case.set()
        await self.other_waits.wait()
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY})

    async def other(self) -> None:
        async with self.database.engine.connect() as other, self.database.engine.connect() as probe:
            await other.execute(text("SET LOCAL deadlock_timeout = '1h'"))  # never the finder
            pid = await other.scalar(text("SELECT pg_backend_pid()"))
            await other.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY})
            await self.request_holds_case.wait()
            locking = asyncio.create_task(
                other.execute(
                    text("SELECT id FROM cases WHERE id = :id FOR UPDATE"), {"id": self.case_id}
                )
            )
            waiting = text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted")
            while not await probe.scalar(waiting, {"pid": pid}):
                pass  # each check is a round trip to the server: a wait on the condition
            self.other_waits.set()
            await locking  # granted once the request's transaction is ended, and with it its lock
            await other.rollback()


async def _deadlocked(
    database: Database,
    case_id: str,
    monkeypatch: pytest.MonkeyPatch,
    target: Any,
    name: str,
    send: Callable[[], Awaitable[httpx.Response]],
) -> httpx.Response:
    """`send`'s answer, with `target.name` (a function whose first argument is the request's
    session) made to end in the deadlock once it has done its work."""
    deadlock = Deadlock(database, case_id)
    original = getattr(target, name)

    async def then_deadlock(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        result = await original(session, *args, **kwargs)
        await deadlock.in_request(session)
        return result

    monkeypatch.setattr(target, name, then_deadlock)
    async with asyncio.timeout(GUARD_SECONDS):
        answer, _ = await asyncio.gather(send(), deadlock.other())
    monkeypatch.undo()
    return answer


def _skip_on_sqlite(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("SQLite has one writer at a time: its transactions cannot deadlock")


async def test_a_deadlocked_fhir_update_is_a_transient_503(
    database: Database,
    is_postgres: bool,
    client: httpx.AsyncClient,
    fhir: httpx.AsyncClient,
    scopes: SetScopes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _skip_on_sqlite(is_postgres)
    plan = await planned_case(client)
    goal_id = plan["goal"]["id"]
    goal = ok(await fhir.get(f"/Goal/{goal_id}"))
    changed = goal | {"lifecycleStatus": "on-hold"}

    answer = await _deadlocked(
        database,
        plan["case"]["id"],
        monkeypatch,
        updates,
        "update_resource",
        lambda: fhir.put(f"/Goal/{goal_id}", json=changed),
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["content-type"].startswith("application/fhir+json")
    [issue] = answer.json()["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "transient")
    assert "deadlock" in issue["diagnostics"]
    # The update had been made in the request's transaction: it was rolled back.
    after = ok(await fhir.get(f"/Goal/{goal_id}"))
    assert (after["lifecycleStatus"], after["meta"]) == (goal["lifecycleStatus"], goal["meta"])
    # Sent again, it is done.
    assert ok(await fhir.put(f"/Goal/{goal_id}", json=changed))["lifecycleStatus"] == "on-hold"


async def test_a_deadlocked_batch_entry_is_a_transient_503_entry(
    database: Database,
    is_postgres: bool,
    client: httpx.AsyncClient,
    fhir: httpx.AsyncClient,
    scopes: SetScopes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a batch the entry says so, and the others stand (R4 http.html#3.1.0.11.1)."""
    _skip_on_sqlite(is_postgres)
    plan = await planned_case(client)
    goal_id, case_id = plan["goal"]["id"], plan["case"]["id"]
    goal = ok(await fhir.get(f"/Goal/{goal_id}"))
    entries = [
        {"request": {"method": "PUT", "url": f"Goal/{goal_id}"}, "resource": goal},
        {"request": {"method": "GET", "url": f"CarePlan/{case_id}"}},
    ]
    answer = await _deadlocked(
        database,
        case_id,
        monkeypatch,
        updates,
        "update_resource",
        lambda: fhir.post("", json={"resourceType": "Bundle", "type": "batch", "entry": entries}),
    )
    failed, read = ok(answer)["entry"]
    assert failed["response"]["status"] == "503 Service Unavailable"
    assert failed["response"]["outcome"]["issue"][0]["code"] == "transient"
    assert read["response"]["status"] == "200 OK"


async def test_a_deadlocked_api_update_is_a_transient_503(
    database: Database,
    is_postgres: bool,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _skip_on_sqlite(is_postgres)
    case = await open_case(client, title="before")

    answer = await _deadlocked(
        database,
        case["id"],
        monkeypatch,
        case_routes,
        "change_case",
        lambda: patch_case(client, case, title="after"),
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert (problem["status"], problem["type"]) == (
        503,
        "https://casebridge.dev/problems/transient",
    )
    assert "deadlock" in problem["detail"]
    stored = ok(await client.get(f"/api/cases/{case['id']}"))
    assert (stored["title"], stored["version"]) == ("before", case["version"])
    assert ok(await patch_case(client, case, title="after"))["title"] == "after"


@pytest.fixture
async def tolerant(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Answers with the 500 instead of re-raising the server's exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"X-API-Key": BOOTSTRAP_KEY}
    ) as http:
        yield http


async def test_any_other_database_error_is_still_a_500(
    client: httpx.AsyncClient, tolerant: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the moment's errors are a 503: one of the statement is a bug, and stays a 500."""
    case = await open_case(client, title="before")

    async def broken(session: AsyncSession, *_args: Any, **_kwargs: Any) -> None:
        await session.execute(text("SELEC 1"))

    monkeypatch.setattr(case_routes, "change_case", broken)
    answer = await patch_case(tolerant, case, title="after")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "Retry-After" not in answer.headers
