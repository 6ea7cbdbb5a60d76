"""How audit records reach the database: a `/fhir` change commits its record in its own
transaction (one commit, or none), and concurrent reads share the commits of the group-commit
writer. Commits and audit inserts are counted with SQLAlchemy event listeners on the app's
engine, never by timing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from service.audit import middleware as audit_middleware
from service.audit import recorder as audit_recorder
from service.audit.models import AuditRecord
from service.cases.models import Case
from service.db.session import Database
from service.fhir_store.models import StoredResource
from tests.api.case_factory import create_patient, open_case
from tests.fhir_api.conftest import SetScopes
from tests.fhir_api.test_creates_and_deletes import goal

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def case_transaction(patient_id: str) -> dict[str, Any]:
    """A Goal and the CarePlan that lists it: one new case (as bench/fhir_load.py sends)."""
    goal_url = "urn:uuid:00000000-0000-4000-8000-000000000001"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": goal_url,
                "request": {"method": "POST", "url": "Goal"},
                "resource": {
                    "resourceType": "Goal",
                    "lifecycleStatus": "active",
                    "description": {"text": "Walk unaided"},
                    "subject": {"reference": f"Patient/{patient_id}"},
                },
            },
            {
                "request": {"method": "POST", "url": "CarePlan"},
                "resource": {
                    "resourceType": "CarePlan",
                    "status": "active",
                    "intent": "plan",
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "goal": [{"reference": goal_url}],
                },
            },
        ],
    }


WRITES = re.compile(r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)


@contextmanager
def committed_writes(database: Database) -> Iterator[list[set[str]]]:
    """The tables each commit on `database`'s engine wrote to, while the block runs (other
    work of the app, a rate-limit bucket or the push dispatcher, commits on its own)."""
    commits: list[set[str]] = []
    pending: dict[int, set[str]] = {}

    def before(
        connection: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool
    ) -> None:
        written = WRITES.match(statement)
        if written:
            pending.setdefault(id(connection), set()).add(written.group(1).lower())

    def on_commit(connection: Any) -> None:
        commits.append(pending.pop(id(connection), set()))

    def on_rollback(connection: Any) -> None:
        pending.pop(id(connection), None)

    engine = database.engine.sync_engine
    listeners: list[tuple[str, Any]] = [
        ("before_cursor_execute", before),
        ("commit", on_commit),
        ("rollback", on_rollback),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield commits
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def writing(commits: list[set[str]], table: str) -> list[set[str]]:
    return [tables for tables in commits if table in tables]


@contextmanager
def counted_audit_inserts(database: Database) -> Iterator[list[int]]:
    """Counts the statements that insert audit rows (an executemany counts once)."""
    counter = [0]

    def before(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS "):
            counter[0] += 1

    event.listen(database.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield counter
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", before)


async def count_of(database: Database, model: Any) -> int:
    async with database.transaction(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_fhir_change_and_its_audit_record_commit_together(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    database: Database = app.state.database
    patient = await create_patient(client)
    with committed_writes(database) as commits:
        created = await fhir.post(
            "http://testserver/fhir", json=case_transaction(patient["id"]), headers=FHIR_JSON
        )
    assert created.status_code == 200, created.text
    # One commit holds the case, its versions and its audit record (before: the audit
    # writer committed the record in a second transaction, after the change's).
    (change,) = writing(commits, "fhir_resources")
    assert {"cases", "audit_events"} <= change
    assert writing(commits, "audit_events") == [change]
    async with database.transaction(write=False) as session:
        (row,) = await session.scalars(select(AuditRecord))
    assert (row.interaction, row.status, row.agent) == ("transaction", 200, "test-client")

    (location,) = (
        e["response"]["location"]
        for e in created.json()["entry"]
        if e["response"]["location"].startswith("CarePlan/")
    )
    plan = (await fhir.get(location.split("/_history")[0])).json()
    plan["description"] = "Walk to the shop"
    with committed_writes(database) as commits:
        updated = await fhir.put(f"/CarePlan/{plan['id']}", json=plan, headers=FHIR_JSON)
    assert updated.status_code == 200, updated.text
    (change,) = writing(commits, "fhir_resources")
    assert writing(commits, "audit_events") == [change]
    async with database.transaction(write=False) as session:
        interactions = set(await session.scalars(select(AuditRecord.interaction)))
    assert interactions == {"transaction", "read", "update"}


async def test_a_change_whose_audit_cannot_be_written_is_not_committed(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    database: Database = app.state.database
    patient = await create_patient(client)
    case = await open_case(client, patient["id"])
    cases_before = await count_of(database, Case)
    resources_before = await count_of(database, StoredResource)
    plan = (await fhir.get(f"/CarePlan/{case['id']}")).json()
    plan["description"] = "Changed without a trail"

    async def fail(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT INTO audit_events", {}, Exception("disk I/O error"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audit_recorder, "insert_audit_entries", fail)
        patch.setattr(audit_middleware, "insert_audit_entries", fail, raising=False)
        created = await fhir.post(
            "http://testserver/fhir", json=case_transaction(patient["id"]), headers=FHIR_JSON
        )
        updated = await fhir.put(f"/CarePlan/{case['id']}", json=plan, headers=FHIR_JSON)

    assert created.status_code >= 500
    assert updated.status_code >= 500
    # Nothing of either change is left behind.
    assert await count_of(database, Case) == cases_before
    assert await count_of(database, StoredResource) == resources_before
    stored = (await fhir.get(f"/CarePlan/{case['id']}")).json()
    assert stored.get("description") != "Changed without a trail"
    assert stored["meta"]["versionId"] == plan["meta"]["versionId"]


def two_goals_and_a_read(case: dict[str, Any]) -> dict[str, Any]:
    patient_id = case["patient_id"]
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "POST", "url": "Goal"}, "resource": goal(patient_id)},
            {"request": {"method": "GET", "url": f"CarePlan/{case['id']}"}},
            {"request": {"method": "POST", "url": "Goal"}, "resource": goal(patient_id)},
        ],
    }


async def test_each_change_of_a_batch_commits_with_its_audit_record(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    database: Database = app.state.database
    case = await open_case(client)
    with committed_writes(database) as commits:
        response = await fhir.post(
            "http://testserver/fhir", json=two_goals_and_a_read(case), headers=FHIR_JSON
        )
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "200 OK", "201 Created"]
    # Each entry's change is one commit that holds its audit record too (before: the entries'
    # records were written after every change had committed).
    changes = writing(commits, "fhir_resources")
    assert len(changes) == 2
    assert all("audit_events" in change for change in changes)
    async with database.transaction(write=False) as session:
        rows = list(await session.scalars(select(AuditRecord)))
    # The read and the batch itself are audited as before: one record each, none twice.
    assert sorted((row.interaction, row.status) for row in rows) == [
        ("batch", 200),
        ("create", 201),
        ("create", 201),
        ("read", 200),
    ]


async def test_a_delete_commits_with_its_audit_record_and_a_transactions_reads_are_audited(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    database: Database = app.state.database
    lone = await create_patient(client)
    with committed_writes(database) as commits:
        deleted = await fhir.delete(f"/Patient/{lone['id']}")
    assert deleted.status_code == 204, deleted.text
    (change,) = writing(commits, "fhir_resources")
    assert {"patients", "audit_events"} <= change
    assert writing(commits, "audit_events") == [change]

    case = await open_case(client)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"CarePlan/{case['id']}"}},
            {"request": {"method": "DELETE", "url": f"CarePlan/{case['id']}"}},
            {"request": {"method": "GET", "url": f"Goal?patient={case['patient_id']}"}},
        ],
    }
    with committed_writes(database) as commits:
        response = await fhir.post("http://testserver/fhir", json=bundle, headers=FHIR_JSON)
    # The reads ran last, after the delete: the CarePlan read is a 410, so the transaction
    # fails whole, and its audit record says so.
    assert response.status_code == 410, response.text
    assert writing(commits, "fhir_resources") == []
    bundle["entry"] = bundle["entry"][1:]
    response = await fhir.post("http://testserver/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    async with database.transaction(write=False) as session:
        rows = list(await session.scalars(select(AuditRecord)))
    assert sorted((row.interaction, row.status) for row in rows) == [
        ("delete", 204),
        ("search-type", 200),
        ("transaction", 200),
        ("transaction", 410),
    ]


async def test_a_batch_change_whose_audit_cannot_be_written_is_not_committed(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    database: Database = app.state.database
    case = await open_case(client)
    resources_before = await count_of(database, StoredResource)

    async def fail(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT INTO audit_events", {}, Exception("disk I/O error"))

    # Only the change's own audit insert fails; the group-commit writer still works.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audit_middleware, "insert_audit_entries", fail, raising=False)
        response = await fhir.post(
            "http://testserver/fhir", json=two_goals_and_a_read(case), headers=FHIR_JSON
        )
    assert response.status_code == 200, response.text
    created, read, created_too = response.json()["entry"]
    for entry in (created, created_too):
        assert entry["response"]["status"] == "503 Service Unavailable"
        assert entry["response"]["outcome"]["resourceType"] == "OperationOutcome"
        assert "resource" not in entry
    assert read["response"]["status"] == "200 OK"
    # No Goal was stored, and the refused entries are audited as refused.
    assert await count_of(database, StoredResource) == resources_before
    goals = (await fhir.get(f"/Goal?patient={case['patient_id']}")).json()
    assert goals["total"] == 0
    async with database.transaction(write=False) as session:
        rows = list(await session.scalars(select(AuditRecord)))
    assert sorted(
        (row.interaction, row.status) for row in rows if row.interaction != "search-type"
    ) == [
        ("batch", 200),
        ("create", 503),
        ("create", 503),
        ("read", 200),
    ]


async def _until(condition: Any) -> None:
    """Yield to the event loop until `condition()` holds (a condition, not a delay)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


READS = 8


async def test_concurrent_reads_share_audit_commits(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    database: Database = app.state.database
    recorder: audit_recorder.AuditRecorder = app.state.audit_recorder
    case = await open_case(client)
    insert = audit_recorder.insert_audit_entries
    first = True

    async def held_first(executor: Any, entries: Any) -> None:
        # The first commit is held until every read has handed in its record: what arrives
        # while a commit runs goes into the next one, together.
        nonlocal first
        if first:
            first = False
            await _until(lambda: recorder.pending == READS)
        await insert(executor, entries)

    with pytest.MonkeyPatch.context() as patch, counted_audit_inserts(database) as inserts:
        patch.setattr(audit_recorder, "insert_audit_entries", held_first)
        responses = await asyncio.gather(
            *(fhir.get(f"/CarePlan/{case['id']}") for _ in range(READS))
        )
    assert [r.status_code for r in responses] == [200] * READS
    assert await count_of(database, AuditRecord) == READS
    # The records that arrived while the first commit ran went into one more (never one each).
    assert inserts[0] <= 2


async def test_a_failed_audit_batch_fails_every_read_in_it(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    database: Database = app.state.database
    recorder: audit_recorder.AuditRecorder = app.state.audit_recorder
    case = await open_case(client)
    batches: list[int] = []

    async def failing(_executor: Any, entries: Any) -> None:
        if not batches:
            await _until(lambda: recorder.pending == READS)
        batches.append(len(entries))
        raise OperationalError("INSERT INTO audit_events", {}, Exception("disk I/O error"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audit_recorder, "insert_audit_entries", failing)
        responses = await asyncio.gather(
            *(fhir.get(f"/CarePlan/{case['id']}") for _ in range(READS))
        )
    assert sum(batches) == READS
    assert len(batches) < READS  # some batch held several reads' records
    assert [r.status_code for r in responses] == [503] * READS
    assert all(r.headers["Retry-After"] for r in responses)
    assert all(case["id"] not in r.text for r in responses)
    assert await count_of(database, AuditRecord) == 0
