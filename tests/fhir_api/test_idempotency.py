"""`Idempotency-Key` on `/fhir` POST: replays get the first answer, another body with the key
is refused, failed work leaves the key free, keys are per caller and expire."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from service.audit.models import AuditPatient, AuditRecord
from service.db.base import utcnow
from service.db.session import Database
from service.fhir_auth.principal import FhirPrincipal, authenticate_fhir
from service.fhir_auth.scopes import parse_scopes
from service.idempotency import repository
from service.idempotency.models import IdempotencyKey
from service.idempotency.repository import Reservation
from service.settings import Settings
from tests.api.case_factory import create_patient, ok, open_case, patch_case
from tests.conftest import settings_for
from tests.fhir_api.conftest import SetScopes
from tests.fhir_api.test_creates_and_deletes import goal
from tests.fhir_api.test_reads import outcome
from tests.fhir_api.test_transactions import discharge_bundle

KEPT = ("content-type", "location", "etag", "last-modified")


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Admission control is not under test here: every concurrent request must reach the
    write path (the in-flight bound would answer some of them 503)."""
    return settings_for(database_url, max_in_flight=0, rate_limits_enabled=False)


Answer = tuple[int, tuple[tuple[str, str], ...], bytes]


def answer(response: httpx.Response) -> Answer:
    """What a replay must repeat: status, the headers that matter, and the body."""
    headers = tuple((k, response.headers[k]) for k in KEPT if k in response.headers)
    return response.status_code, headers, response.content


async def goal_ids(client: httpx.AsyncClient, case_id: str) -> list[str]:
    return [g["id"] for g in ok(await client.get(f"/api/cases/{case_id}/goals"))["items"]]


async def test_a_replayed_create_gets_the_first_answer_and_makes_nothing_new(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    body = goal(case["patient_id"])
    first = await fhir.post("/Goal", json=body, headers={"Idempotency-Key": "goal-1"})
    assert first.status_code == 201, first.text
    again = await fhir.post("/Goal", json=body, headers={"Idempotency-Key": '"goal-1"'})
    assert answer(again) == answer(first)
    assert set(KEPT) <= set(first.headers)
    assert await goal_ids(client, case["id"]) == [first.json()["id"]]

    minimal = await fhir.post(
        "/Goal", json=body, headers={"Idempotency-Key": "goal-2", "Prefer": "return=minimal"}
    )
    assert (minimal.status_code, minimal.content) == (201, b"")
    replayed = await fhir.post(
        "/Goal", json=body, headers={"Idempotency-Key": "goal-2", "Prefer": "return=minimal"}
    )
    assert answer(replayed) == answer(minimal)
    assert len(await goal_ids(client, case["id"])) == 2


async def test_the_same_key_with_another_request_is_refused(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    body = goal(case["patient_id"])
    ok(await fhir.post("/Goal", json=body, headers={"Idempotency-Key": "k"}), 201)
    changed = body | {"description": {"text": "Something else"}}
    refused = outcome(await fhir.post("/Goal", json=changed, headers={"Idempotency-Key": "k"}), 422)
    assert refused["issue"][0]["expression"] == ["Idempotency-Key"]
    elsewhere = await fhir.post(
        "/ServiceRequest", json=body | {"resourceType": "Goal"}, headers={"Idempotency-Key": "k"}
    )
    outcome(elsewhere, 422)  # another path is another request
    assert len(await goal_ids(client, case["id"])) == 1
    outcome(await fhir.post("/Goal", json=body, headers={"Idempotency-Key": ""}), 400)
    outcome(await fhir.post("/Goal", json=body, headers={"Idempotency-Key": "x" * 256}), 400)


async def test_failed_work_leaves_the_key_free(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes, database: Database
) -> None:
    patient = await create_patient(client)
    body = goal(patient["id"])
    headers = {"Idempotency-Key": "retry-me"}
    case = await open_case(client, patient_id=patient["id"])
    other = await open_case(client, patient_id=patient["id"])
    outcome(await fhir.post("/Goal", json=body, headers=headers), 422)  # which case?
    async with database.transaction(write=False) as session:
        assert (await session.scalars(select(IdempotencyKey))).all() == []
    ok(await patch_case(client, other, status="closed", closure_reason="patient_declined"))
    created = await fhir.post("/Goal", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert await goal_ids(client, case["id"]) == [created.json()["id"]]


async def test_keys_belong_to_their_caller_and_expire(
    fhir: httpx.AsyncClient,
    client: httpx.AsyncClient,
    app: FastAPI,
    scopes: SetScopes,
    database: Database,
) -> None:
    case = await open_case(client)
    body = goal(case["patient_id"])
    headers = {"Idempotency-Key": "shared"}
    ok(await fhir.post("/Goal", json=body, headers=headers), 201)
    other = FhirPrincipal("another-client", parse_scopes("system/*.cruds", strict=True))
    app.dependency_overrides[authenticate_fhir] = lambda: other
    ok(await fhir.post("/Goal", json=body, headers=headers), 201)
    assert len(await goal_ids(client, case["id"])) == 2

    async with database.transaction() as session:
        await session.execute(
            update(IdempotencyKey).values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    changed = body | {"description": {"text": "After expiry"}}
    ok(await fhir.post("/Goal", json=changed, headers=headers), 201)  # an expired key is new
    ok(await fhir.post("/Goal", json=body, headers={"Idempotency-Key": "fresh"}), 201)
    assert len(await goal_ids(client, case["id"])) == 4
    async with database.transaction(write=False) as session:
        rows = (await session.execute(select(IdempotencyKey.principal, IdempotencyKey.key))).all()
    # The first caller's expired key was pruned when a new key was reserved.
    assert sorted(map(tuple, rows)) == [("another-client", "fresh"), ("another-client", "shared")]


async def test_transaction_and_batch_replays(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    bundle = discharge_bundle("MRN-IDEM-1")
    send = {"Idempotency-Key": "bundle-1", "Content-Type": "application/fhir+json"}
    first = await fhir.post("http://testserver/fhir", content=orjson.dumps(bundle), headers=send)
    assert first.status_code == 200, first.text
    again = await fhir.post("http://testserver/fhir", content=orjson.dumps(bundle), headers=send)
    assert answer(again) == answer(first)
    patients = ok(await client.get("/api/patients"))["items"]
    (patient,) = [p for p in patients if p["family_name"] == "Okafor"]
    cases = ok(await client.get("/api/cases", params={"patient_id": patient["id"]}))["items"]
    assert len(cases) == 1

    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": goal(patient["id"]), "request": {"method": "POST", "url": "Goal"}}],
    }
    send["Idempotency-Key"] = "batch-1"
    first = await fhir.post("http://testserver/fhir", content=orjson.dumps(batch), headers=send)
    assert first.json()["entry"][0]["response"]["status"] == "201 Created", first.text
    again = await fhir.post("http://testserver/fhir", content=orjson.dumps(batch), headers=send)
    assert answer(again) == answer(first)
    assert len(await goal_ids(client, cases[0]["id"])) == 2  # the bundle's goal and this one


Audited = tuple[str, str | None, str | None, int, tuple[str, ...]]


async def fhir_audit(database: Database) -> list[Audited]:
    """The `/fhir` caller's AuditEvents: interaction, type, id, status and patients."""
    async with database.transaction(write=False) as session:
        rows = (
            await session.execute(
                select(
                    AuditRecord.id,
                    AuditRecord.interaction,
                    AuditRecord.resource_type,
                    AuditRecord.resource_id,
                    AuditRecord.status,
                ).where(AuditRecord.agent == "test-client")
            )
        ).all()
        links = await session.execute(select(AuditPatient.event_id, AuditPatient.patient_id))
    patients: dict[str, list[str]] = {}
    for event_id, patient_id in links:
        patients.setdefault(event_id, []).append(patient_id)
    return sorted(
        (interaction, kind, resource_id, status, tuple(sorted(patients.get(event_id, []))))
        for event_id, interaction, kind, resource_id, status in rows
    )


async def test_a_replay_audits_what_it_discloses_as_the_first_answer_did(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes, database: Database
) -> None:
    case = await open_case(client)
    patient = case["patient_id"]
    reads = [
        {"request": {"method": "GET", "url": f"CarePlan/{case['id']}"}},
        {"request": {"method": "GET", "url": f"Goal?patient={patient}"}},
    ]
    create = {"resource": goal(patient), "request": {"method": "POST", "url": "Goal"}}
    for kind in ("transaction", "batch"):
        bundle = orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": [create, *reads]})
        send = {"Idempotency-Key": kind, "Content-Type": "application/fhir+json"}
        before = Counter(await fhir_audit(database))
        first = await fhir.post("http://testserver/fhir", content=bundle, headers=send)
        assert first.status_code == 200, first.text
        after_first = Counter(await fhir_audit(database))
        first_events = sorted((after_first - before).elements())
        again = await fhir.post("http://testserver/fhir", content=bundle, headers=send)
        assert answer(again) == answer(first)
        replay_events = sorted((Counter(await fhir_audit(database)) - after_first).elements())
        # The GET entries' reads (with the patient they disclose) are audited again, as is
        # everything else the first answer was audited for.
        assert ("read", "CarePlan", case["id"], 200, (patient,)) in replay_events
        assert ("search-type", "Goal", None, 200, (patient,)) in replay_events
        assert replay_events == first_events, kind
        # Each is recorded as what it is: a disclosure again (R), not a second create.
        async with database.transaction(write=False) as session:
            replayed = (
                await session.execute(
                    select(AuditRecord.action, AuditRecord.content)
                    .where(AuditRecord.agent == "test-client")
                    .order_by(AuditRecord.recorded_at.desc())
                    .limit(len(replay_events))
                )
            ).all()
        assert {action for action, _ in replayed} == {"R"}, kind
        assert all(b"replayed: nothing changed again" in content for _, content in replayed)


async def test_concurrent_requests_with_one_key_make_one_resource(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    body = goal(case["patient_id"])
    responses = await asyncio.gather(
        *(fhir.post("/Goal", json=body, headers={"Idempotency-Key": "burst"}) for _ in range(20))
    )
    answers = {answer(r) for r in responses}
    assert len(answers) == 1, answers
    assert responses[0].status_code == 201
    assert await goal_ids(client, case["id"]) == [responses[0].json()["id"]]


async def test_a_dead_holders_key_is_taken_over_and_a_late_holder_keeps_nothing(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes, database: Database
) -> None:
    case = await open_case(client)
    body = goal(case["patient_id"])
    headers = {"Idempotency-Key": "orphaned"}
    # A first request reserved the key, then its process died before its work committed:
    # there is no answer and no goal, and the lease is over.
    now = utcnow()
    dead = Reservation(
        fingerprint="unused", token="dead", lease_until=now, expires_at=now + dt.timedelta(1)
    )
    async with database.transaction() as session:
        assert await repository.reserve(session, "test-client", "orphaned", dead)
    created = await fhir.post("/Goal", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert await goal_ids(client, case["id"]) == [created.json()["id"]]


async def test_a_holder_that_outlived_its_lease_stores_nothing(database: Database) -> None:
    now = utcnow()
    day = now + dt.timedelta(days=1)
    late = Reservation(
        "f", "late-holder", lease_until=now - dt.timedelta(seconds=1), expires_at=day
    )
    taker = Reservation("f", "taker", lease_until=now + dt.timedelta(minutes=1), expires_at=day)
    async with database.transaction() as session:
        assert await repository.reserve(session, "c", "k", late)
        assert not await repository.reserve(session, "c", "k", taker)
        assert await repository.take_over(
            session, "c", "k", taker, previous_token="late-holder", now=now
        )
        assert not await repository.take_over(
            session, "c", "k", late, previous_token="late-holder", now=now
        )
        for token, stored in (("late-holder", False), ("taker", True)):
            completed = await repository.complete(
                session,
                "c",
                "k",
                token=token,
                status_code=201,
                headers={},
                body=b"",
                expires_at=day,
            )
            assert completed is stored
