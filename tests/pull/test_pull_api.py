"""Pull jobs through the API, with the EHR faked by respx: identity by identifier (and never by
name or birth date), identity conflicts, incremental pulls in the server's clock, refusals,
cancelling, and a job interrupted by a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import respx
from fastapi import FastAPI
from sqlalchemy import func, select

from service.app import create_app
from service.db.session import Database
from service.links.models import PatientLink
from service.patients.models import Patient
from service.pull.models import PulledRecord, PullJob, PullState
from service.pull.reader import RECORD_TYPES
from service.pull.repository import upsert_record_rows
from service.pull.runner import PullRunner
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY

MRN = "urn:oid:1.2.3.4|MRN-1"
T1 = "2026-11-30T10:00:00.000Z"


def remote_patient(*identifiers: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "r1",
        "meta": {"versionId": "4"},
        "identifier": [
            {"system": token.split("|")[0], "value": token.split("|")[1]} for token in identifiers
        ],
        **extra,
    }


def bundle(*resources: dict[str, Any], at: str = T1) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "meta": {"lastUpdated": at},
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "meta": {"versionId": "2"},
    "subject": {"reference": "Patient/r1"},
    "code": {"text": "Heart failure"},
}


def serve_record(
    ehr: respx.MockRouter, patient: dict[str, Any], **by_type: Any
) -> dict[str, respx.Route]:
    ehr.get("/Patient/r1").respond(json=patient)
    routes = {}
    for kind in RECORD_TYPES:
        answer = by_type.get(kind, bundle())
        route = ehr.get(f"/{kind}")
        routes[kind] = (
            route.mock(side_effect=answer) if callable(answer) else route.respond(json=answer)
        )
    return routes


async def pull(app: FastAPI, client: httpx.AsyncClient, connection_id: str) -> dict[str, Any]:
    started = await client.post(
        f"/api/connections/{connection_id}/pulls", json={"patients": [{"remote_id": "r1"}]}
    )
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "queued"
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), 30)
    body: dict[str, Any] = (await client.get(f"/api/pulls/{started.json()['id']}")).json()
    return body


async def local_patients(database: Database) -> list[Patient]:
    async with database.transaction(write=False) as session:
        return list(await session.scalars(select(Patient).order_by(Patient.created_at)))


async def test_an_identifier_matches_the_local_patient(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    created = await client.post(
        "/api/patients",
        json={
            "family_name": "Local",
            "identifiers": [{"system": "urn:oid:1.2.3.4", "value": "MRN-1"}],
        },
    )
    assert created.status_code == 201, created.text
    local_id = created.json()["id"]
    serve_record(ehr, remote_patient(MRN, name=[{"family": "Other"}]), Condition=bundle(CONDITION))
    job = await pull(app, client, connection_id)
    assert job["state"] == "succeeded", job["failures"]
    assert job["counts"]["Patient"] == 1
    assert job["counts"]["Condition"] == 1
    assert [p.id for p in await local_patients(database)] == [local_id]
    records = await client.get(f"/api/connections/{connection_id}/patients/{local_id}/records")
    assert [
        (r["resource_type"], r["remote_id"], r["remote_version_id"]) for r in records.json()
    ] == [
        ("Condition", "c1", "2"),
        ("Patient", "r1", "4"),
    ]


async def test_the_same_name_and_birth_date_without_an_identifier_is_another_patient(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    same = {"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1815-12-10"}
    existing = (await client.post("/api/patients", json=same)).json()["id"]
    serve_record(
        ehr,
        remote_patient(
            MRN, name=[{"given": ["Ada"], "family": "Lovelace"}], birthDate="1815-12-10"
        ),
    )
    job = await pull(app, client, connection_id)
    assert job["state"] == "succeeded", job["failures"]
    patients = await local_patients(database)
    assert len(patients) == 2
    [new] = [p for p in patients if p.id != existing]
    assert (new.given_name, new.family_name, str(new.birth_date)) == (
        "Ada",
        "Lovelace",
        "1815-12-10",
    )
    async with database.transaction(write=False) as session:
        [link] = await session.scalars(select(PatientLink))
    assert (link.patient_id, link.remote_id) == (new.id, "r1")


async def test_identifiers_of_two_local_patients_are_left_for_a_person(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    ids = []
    for system, value in (("urn:oid:1.2.3.4", "MRN-1"), ("http://hl7.org/fhir/sid/us-ssn", "999")):
        response = await client.post(
            "/api/patients", json={"identifiers": [{"system": system, "value": value}]}
        )
        ids.append(response.json()["id"])
    serve_record(
        ehr, remote_patient(MRN, "http://hl7.org/fhir/sid/us-ssn|999"), Condition=bundle(CONDITION)
    )
    job = await pull(app, client, connection_id)
    assert job["state"] == "failed"
    [failure] = job["failures"]
    assert failure["target"] == "Patient/r1"
    assert failure["reason"].startswith("ambiguous identity")
    conflicts = (await client.get("/api/pulls/identity-conflicts")).json()
    assert len(conflicts) == 1
    assert sorted(conflicts[0]["candidate_patient_ids"]) == sorted(ids)
    assert conflicts[0]["remote_patient_id"] == "r1"
    assert "urn:oid:1.2.3.4|MRN-1" in conflicts[0]["reason"]
    async with database.transaction(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(PatientLink)) == 0
        assert await session.scalar(select(func.count()).select_from(PulledRecord)) == 0
    assert len(await local_patients(database)) == 2  # nothing merged, nothing created

    # A person says which patient it is: the next pull files the record there.
    resolved = await client.post(
        f"/api/pulls/identity-conflicts/{conflicts[0]['id']}/resolve",
        json={"patient_id": ids[1]},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved_by"] == "apikey:bootstrap"
    assert (await client.get("/api/pulls/identity-conflicts")).json() == []
    again = await pull(app, client, connection_id)
    assert again["state"] == "succeeded", again["failures"]
    records = await client.get(f"/api/connections/{connection_id}/patients/{ids[1]}/records")
    assert {r["resource_type"] for r in records.json()} == {"Patient", "Condition"}
    assert len(await local_patients(database)) == 2
    twice = await client.post(
        f"/api/pulls/identity-conflicts/{conflicts[0]['id']}/resolve",
        json={"patient_id": ids[0]},
    )
    assert twice.status_code == 409


async def test_only_a_candidate_can_resolve_a_conflict(
    app: FastAPI,
    client: httpx.AsyncClient,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    for system, value in (("urn:oid:1.2.3.4", "MRN-1"), ("http://hl7.org/fhir/sid/us-ssn", "999")):
        await client.post(
            "/api/patients", json={"identifiers": [{"system": system, "value": value}]}
        )
    bystander = (await client.post("/api/patients", json={"family_name": "Else"})).json()["id"]
    serve_record(ehr, remote_patient(MRN, "http://hl7.org/fhir/sid/us-ssn|999"))
    await pull(app, client, connection_id)
    [conflict] = (await client.get("/api/pulls/identity-conflicts")).json()
    refused = await client.post(
        f"/api/pulls/identity-conflicts/{conflict['id']}/resolve", json={"patient_id": bystander}
    )
    assert refused.status_code == 409
    assert refused.json()["rule"] == "pull.identity.candidate"


async def test_a_repeat_pull_asks_for_changes_since_the_servers_clock(
    app: FastAPI,
    client: httpx.AsyncClient,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    refused = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "no scope"}],
    }
    routes = serve_record(ehr, remote_patient(MRN), Condition=bundle(CONDITION, at=T1))
    routes["MedicationRequest"].respond(403, json=refused)
    first = await pull(app, client, connection_id)
    assert first["state"] == "completed_with_errors"
    assert first["failures"] == [
        {
            "target": "Patient/r1",
            "resource_type": "MedicationRequest",
            "remote_id": None,
            "reason": "GET answered 403: no scope",
        }
    ]
    assert first["counts"]["Condition"] == 1  # the rest of the pull went on
    assert "_lastUpdated" not in routes["Condition"].calls.last.request.url.params

    await pull(app, client, connection_id)
    assert routes["Condition"].calls.last.request.url.params["_lastUpdated"] == f"gt{T1}"
    # A type that failed has no cursor: it is read in full again.
    assert "_lastUpdated" not in routes["MedicationRequest"].calls.last.request.url.params


async def test_a_running_pull_can_be_cancelled(
    app: FastAPI,
    client: httpx.AsyncClient,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    reached = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        reached.set()
        await asyncio.sleep(60)
        raise AssertionError("the pull was not cancelled")

    serve_record(ehr, remote_patient(MRN), Condition=hang)
    started = (
        await client.post(
            f"/api/connections/{connection_id}/pulls", json={"patients": [{"remote_id": "r1"}]}
        )
    ).json()
    await asyncio.wait_for(reached.wait(), 10)
    cancelled = await client.post(f"/api/pulls/{started['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["cancel_requested"] is True
    await asyncio.wait_for(app.state.pull_runner.wait_idle(), 10)
    job = (await client.get(f"/api/pulls/{started['id']}")).json()
    assert job["state"] == "cancelled"
    again = await client.post(f"/api/pulls/{started['id']}/cancel")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


async def test_unknown_pulls_and_bad_requests_are_problems(
    client: httpx.AsyncClient, connection_id: str
) -> None:
    missing = await client.get("/api/pulls/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    unknown_connection = await client.post(
        "/api/connections/nope/pulls", json={"patients": [{"remote_id": "r1"}]}
    )
    assert unknown_connection.status_code == 404
    both = await client.post(
        f"/api/connections/{connection_id}/pulls",
        json={"patients": [{"remote_id": "r1", "identifier": MRN}]},
    )
    assert both.status_code == 422
    assert both.headers["content-type"] == "application/problem+json"


async def test_a_job_interrupted_by_a_restart_runs_again(
    settings: Settings,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    serve_record(ehr, remote_patient(MRN), Condition=bundle(CONDITION))
    async with database.transaction() as session:
        job = PullJob(
            connection_id=connection_id,
            state=PullState.running,  # the process stopped in the middle of it
            targets=[{"remote_id": "r1"}],
            requested_by="apikey:bootstrap",
            counts={},
            failures=[],
        )
        session.add(job)
        await session.flush()
        job_id = job.id
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await asyncio.wait_for(application.state.pull_runner.wait_idle(), 30)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"X-API-Key": BOOTSTRAP_KEY}
        ) as http:
            body = (await http.get(f"/api/pulls/{job_id}")).json()
    assert body["state"] == "succeeded", body
    assert body["counts"]["Condition"] == 1


async def test_a_replica_without_a_runner_still_queues_and_cancels_pulls(
    app: FastAPI, client: httpx.AsyncClient, connection_id: str
) -> None:
    runner = app.state.pull_runner
    await runner.close()
    app.state.pull_runner = None  # as with CASEBRIDGE_PULL_RUNNER_ENABLED=false
    started = await client.post(
        f"/api/connections/{connection_id}/pulls", json={"patients": [{"remote_id": "r1"}]}
    )
    assert started.status_code == 202, started.text
    pull_id = started.json()["id"]
    assert (await client.get(f"/api/pulls/{pull_id}")).json()["state"] == "queued"
    cancelled = await client.post(f"/api/pulls/{pull_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert (await client.get(f"/api/pulls/{pull_id}")).json()["state"] == "cancelled"


async def test_a_resource_repeated_in_one_batch_is_stored_once(
    database: Database, connection_id: str
) -> None:
    first = CONDITION | {"code": {"text": "first"}}
    second = CONDITION | {"code": {"text": "second"}}
    async with database.transaction() as session:
        stored = await upsert_record_rows(
            session, connection_id, [(None, "r1", first), (None, "r1", second)]
        )
    async with database.transaction(write=False) as session:
        rows = list(await session.scalars(select(PulledRecord)))
    assert stored == 1
    assert [orjson.loads(r.content)["code"]["text"] for r in rows] == ["second"]


async def test_a_pull_that_stored_some_patients_completed_with_errors_not_failed(
    app: FastAPI,
    client: httpx.AsyncClient,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    serve_record(ehr, remote_patient(MRN), Condition=bundle(CONDITION))
    ehr.get("/Patient/gone").respond(404, json={"resourceType": "OperationOutcome", "issue": []})
    runner: PullRunner = app.state.pull_runner

    async def pull_targets(*remote_ids: str) -> dict[str, Any]:
        started = await client.post(
            f"/api/connections/{connection_id}/pulls",
            json={"patients": [{"remote_id": r} for r in remote_ids]},
        )
        assert started.status_code == 202, started.text
        await asyncio.wait_for(runner.wait_idle(), 30)
        body: dict[str, Any] = (await client.get(f"/api/pulls/{started.json()['id']}")).json()
        return body

    partly = await pull_targets("r1", "gone")
    assert partly["state"] == "completed_with_errors"
    assert partly["counts"]["Patient"] == 1
    assert [f["target"] for f in partly["failures"]] == ["Patient/gone"]
    nothing = await pull_targets("gone")
    assert nothing["state"] == "failed"
    assert sum(nothing["counts"].values()) == 0
