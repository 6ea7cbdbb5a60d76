"""Audit records are committed before the response goes out, carry the request id, cover
`/api` reads of patient data, and a request whose record cannot be written fails closed."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from service.audit import recorder as audit_recorder
from service.audit.models import AuditPatient, AuditRecord
from service.db.session import Database
from tests.api.case_factory import create_patient, ok, open_case
from tests.fhir_api.conftest import SetScopes

BALP_REQUEST_ID = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"


async def stored_events(database: Database) -> list[dict[str, Any]]:
    """The trail as committed, read straight from the table (no flush, no admin route)."""
    async with database.transaction(write=False) as session:
        rows = await session.scalars(select(AuditRecord).order_by(AuditRecord.recorded_at))
        return [orjson.loads(row.content) for row in rows]


async def patients_of(database: Database, event_id: str) -> set[str]:
    async with database.transaction(write=False) as session:
        return set(
            await session.scalars(
                select(AuditPatient.patient_id).where(AuditPatient.event_id == event_id)
            )
        )


def request_id_of(event: dict[str, Any]) -> str | None:
    for entity in event.get("entity", []):
        if entity.get("type", {}).get("system") == BALP_REQUEST_ID:
            value: str = entity["what"]["identifier"]["value"]
            return value
    return None


def references(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if "reference" in e.get("what", {})}


async def test_the_record_is_committed_before_the_response_and_names_the_request(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, database: Database, scopes: SetScopes
) -> None:
    case = await open_case(client)
    response = await fhir.get(f"/CarePlan/{case['id']}", headers={"X-Request-ID": "req-42.a"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-42.a"
    # Read at once, without waiting for any background writer.
    (event,) = await stored_events(database)
    assert request_id_of(event) == "req-42.a"
    assert references(event) == {f"CarePlan/{case['id']}", f"Patient/{case['patient_id']}"}


async def test_an_unusable_request_id_is_replaced_by_a_generated_one(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, database: Database, scopes: SetScopes
) -> None:
    case = await open_case(client)
    response = await fhir.get(f"/CarePlan/{case['id']}", headers={"X-Request-ID": 'a b"\nc'})
    generated = response.headers["X-Request-ID"]
    assert generated != 'a b"\nc'
    assert len(generated) == 36
    (event,) = await stored_events(database)
    assert request_id_of(event) == generated


async def test_api_reads_of_patient_data_are_audited(
    client: httpx.AsyncClient, database: Database
) -> None:
    patient = await create_patient(client, family_name="Quixote")
    case = await open_case(client, patient["id"])
    other = await create_patient(client, family_name="Panza")
    assert await stored_events(database) == []  # writes on /api are not access records

    ok(await client.get(f"/api/patients/{patient['id']}"))
    ok(await client.get("/api/patients", params={"family_name": "Panza"}))
    ok(await client.get(f"/api/cases/{case['id']}"))
    ok(await client.get("/api/cases", params={"patient_id": patient["id"]}))
    ok(await client.get(f"/api/cases/{case['id']}/goals"))
    ok(await client.get("/api/admin/connections"))  # no patient data: not audited

    read_patient, searched, read_case, listed_cases, goals = await stored_events(database)
    assert [e["subtype"][0]["code"] for e in (read_patient, searched, read_case)] == [
        "read",
        "search-type",
        "read",
    ]
    for event in (read_patient, searched, read_case, listed_cases, goals):
        assert event["agent"][0]["who"]["identifier"]["value"] == "apikey:bootstrap"
        assert event["outcome"] == "0"
        assert request_id_of(event) is not None
    assert references(read_patient) == {f"Patient/{patient['id']}"}
    assert await patients_of(database, read_patient["id"]) == {patient["id"]}
    assert await patients_of(database, searched["id"]) == {other["id"]}
    assert await patients_of(database, read_case["id"]) == {patient["id"]}
    assert await patients_of(database, listed_cases["id"]) == {patient["id"]}
    assert await patients_of(database, goals["id"]) == {patient["id"]}
    assert f"CarePlan/{case['id']}" in references(goals)


async def test_a_read_whose_audit_cannot_be_written_is_refused(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    patient_id = case["patient_id"]
    with pytest.MonkeyPatch.context() as patch:

        async def fail(*_args: Any, **_kwargs: Any) -> None:
            raise OperationalError("INSERT INTO audit_events", {}, Exception("no such table"))

        patch.setattr(audit_recorder, "insert_audit_entries", fail)
        on_fhir = await fhir.get(f"/CarePlan/{case['id']}")
        on_api = await client.get(f"/api/patients/{patient_id}")
        write = await fhir.put(
            f"/CarePlan/{case['id']}",
            content=b"{}",
            headers={"Content-Type": "application/fhir+json"},
        )
        unaudited = await client.get("/api/admin/connections")

    assert on_fhir.status_code == 503
    assert on_fhir.headers["content-type"].startswith("application/fhir+json")
    assert on_fhir.json()["resourceType"] == "OperationOutcome"
    assert on_fhir.headers["Retry-After"]
    assert case["id"] not in on_fhir.text  # the withheld result is not sent
    assert on_api.status_code == 503
    assert on_api.headers["content-type"] == "application/problem+json"
    assert on_api.json()["type"].endswith("audit-unavailable")
    assert patient_id not in on_api.text.replace(f"/api/patients/{patient_id}", "")
    assert write.status_code == 500
    assert unaudited.status_code == 200
    # Once the trail can be written again, reads work again.
    assert (await fhir.get(f"/CarePlan/{case['id']}")).status_code == 200
    await app.state.audit_recorder.flush()
    assert app.state.audit_recorder.pending == 0


async def test_the_entries_of_a_batch_share_its_request_id(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, database: Database, scopes: SetScopes
) -> None:
    case = await open_case(client)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"CarePlan/{case['id']}"}}],
    }
    response = await fhir.post(
        "http://testserver/fhir",
        json=batch,
        headers={"X-Request-ID": "batch-1", "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200, response.text
    events = await stored_events(database)
    assert sorted(e["subtype"][0]["code"] for e in events) == ["batch", "read"]
    assert {request_id_of(e) for e in events} == {"batch-1"}
