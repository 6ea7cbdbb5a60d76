"""Refusals by the layers outside the audit middleware (429 rate limit, 503 in-flight bound,
413 body size) are audited as aggregated AuditEvents, written by the audit writer when it
flushes them, never one database write per refused request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import event, select

from service.admission.in_flight import InFlightGate
from service.audit.models import AuditRecord
from service.audit.recorder import AuditRecorder
from service.audit.refusals import fhir_target
from service.db.session import Database
from tests.admission.conftest import FakeClock, FromAddress
from tests.admission.test_rate_limits import SEARCH, bearer
from tests.fhir_auth.support import ES384_KEY, App, get_token, register


@contextmanager
def audit_inserts(database: Database) -> Iterator[list[str]]:
    """The INSERTs into audit_events that the database sees while the block runs."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
            seen.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def refusal_events(database: Database, status: int) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        rows = await session.scalars(select(AuditRecord).where(AuditRecord.status == status))
        return [orjson.loads(row.content) for row in rows]


def detail(event: dict[str, Any], name: str) -> str:
    entity = next(e for e in event["entity"] if e.get("name") == "refused requests")
    return str(next(d["valueString"] for d in entity["detail"] if d["type"] == name))


async def test_rate_limited_requests_are_audited_as_one_event_per_address(
    app: FastAPI, database: Database, clock: FakeClock, from_address: FromAddress
) -> None:
    recorder: AuditRecorder = app.state.audit_recorder
    async with from_address("10.9.0.1") as http:
        for _ in range(3):  # the burst: unauthenticated, audited one by one as usual
            assert (await http.get(SEARCH)).status_code == 401
        with audit_inserts(app.state.database) as inserts:
            ids = []
            for n in range(5):
                refused = await http.get(SEARCH, headers={"X-Request-ID": f"flood-{n}"})
                assert refused.status_code == 429
                ids.append(refused.headers["x-request-id"])
        assert inserts == []  # counted in memory: no write per refused request
        assert await refusal_events(database, 429) == []

    with audit_inserts(app.state.database) as inserts:
        await recorder.write_refusals()
    assert len(inserts) == 1  # one group commit
    [audited] = await refusal_events(database, 429)
    assert audited["outcome"] == "4"  # the client's failure (R4 AuditEvent.outcome)
    assert audited["subtype"][0]["code"] == "search-type"
    assert audited["agent"][0]["who"]["identifier"]["value"] == "unauthenticated"
    assert audited["agent"][0]["network"]["address"] == "10.9.0.1"
    assert detail(audited, "refused-count") == "5"
    assert detail(audited, "last-request-id") == ids[-1]
    request_ids = [
        e["what"]["identifier"]["value"]
        for e in audited["entity"]
        if e.get("type", {}).get("code") == "XrequestId"
    ]
    assert request_ids == [ids[0]]
    assert audited["period"]["start"] <= audited["period"]["end"]

    await recorder.write_refusals()  # nothing new counted: nothing written
    assert len(await refusal_events(database, 429)) == 1


async def test_a_verified_client_is_named_in_its_refusals_record(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, from_address: FromAddress
) -> None:
    await register(client, "app-refused")
    async with from_address("10.9.1.1") as http:
        token = await get_token(http, App("app-refused", ES384_KEY, "ES384"))
        for _ in range(4):  # first use (the address), then the client's burst of 3
            assert (await http.get(SEARCH, headers=bearer(token))).status_code == 200
        assert (await http.get(SEARCH, headers=bearer(token))).status_code == 429
    await app.state.audit_recorder.write_refusals()
    events = await refusal_events(app.state.database, 429)
    mine = [e for e in events if e["agent"][0]["network"]["address"] == "10.9.1.1"]
    assert [e["agent"][0]["who"]["identifier"]["value"] for e in mine] == ["app-refused"]


async def test_overload_refusals_are_audited_as_our_failure(
    app: FastAPI, database: Database, from_address: FromAddress
) -> None:
    gate: InFlightGate = app.state.in_flight
    gate.queue = 0
    holding = [gate.control.start() for _ in range(gate.limit)]  # every slot taken
    try:
        async with from_address("10.9.2.1") as http:
            for _ in range(3):
                assert (await http.get("/fhir/CarePlan/abc")).status_code == 503
            assert (await http.put("/fhir/CarePlan/abc", content=b"{}")).status_code == 503
    finally:
        for started in holding:
            gate.leave(started)
    await app.state.audit_recorder.write_refusals()
    events = {e["subtype"][0]["code"]: e for e in await refusal_events(database, 503)}
    assert set(events) == {"read", "update"}
    assert events["read"]["outcome"] == "8"  # ours: the process was overloaded
    assert detail(events["read"], "refused-count") == "3"
    assert detail(events["update"], "refused-count") == "1"
    assert detail(events["read"], "reason") == "overloaded"


async def test_a_body_too_large_is_audited_and_an_audited_error_is_not_counted_again(
    app: FastAPI, database: Database, from_address: FromAddress
) -> None:
    limit = app.state.settings.max_body_bytes
    async with from_address("10.9.3.1") as http:
        too_large = await http.post("/api/patients", content=b"x" * (limit + 1))
        assert too_large.status_code == 413
        # A 404 answered inside: the audit middleware saw it; not a refusal of the outer layers.
        assert (await http.get("/fhir/CarePlan/no-such-plan")).status_code in (401, 404)
    await app.state.audit_recorder.write_refusals()
    [audited] = await refusal_events(database, 413)
    assert audited["agent"][0]["network"]["address"] == "10.9.3.1"
    assert audited["subtype"][0]["code"] == "operation"
    assert audited["outcome"] == "4"
    counted = [
        e for e in await refusal_events(database, 401) if e.get("outcomeDesc", "").count("refused")
    ]
    assert counted == []


def test_a_refused_paths_type_and_id_are_taken_only_in_fhirs_form() -> None:
    """The path is the client's: an unknown or over-long type, or an id not of FHIR's form,
    is not recorded (a 41-character type would fail the audit batch on PostgreSQL)."""
    assert fhir_target("/fhir/Goal/abc-1.2") == ("Goal", "abc-1.2")
    assert fhir_target("/fhir/" + "X" * 41) == (None, None)
    assert fhir_target("/fhir/Goal/" + "a" * 65) == ("Goal", None)
    assert fhir_target("/fhir/Goal/_history") == ("Goal", None)
    assert fhir_target("/fhir/metadata") == (None, None)
