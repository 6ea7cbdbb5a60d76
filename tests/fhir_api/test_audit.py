"""Every `/fhir` read, search and refusal leaves an AuditEvent: who, which patient, what, and
the outcome; admins query them."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from fastapi import FastAPI

from tests.api.case_factory import ok, open_case
from tests.fhir_api.conftest import SetScopes


async def trail(app: FastAPI, client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    await app.state.audit_recorder.flush()
    events: list[dict[str, Any]] = ok(await client.get("/api/admin/audit-events", params=params))[
        "items"
    ]
    return events


def references(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if "reference" in e.get("what", {})}


def subtype(event: dict[str, Any]) -> str:
    code: str = event["subtype"][0]["code"]
    return code


async def test_reads_searches_and_refusals_are_audited(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    mine, theirs = await open_case(client), await open_case(client)
    assert (await fhir.get(f"/CarePlan/{mine['id']}")).status_code == 200
    assert (await fhir.get("/CarePlan", params={"status": "draft"})).status_code == 200
    scopes("patient/*.rs", patient=mine["patient_id"])
    assert (await fhir.get(f"/CarePlan/{theirs['id']}")).status_code == 403

    events = await trail(app, client)
    assert [subtype(e) for e in events] == ["read", "search-type", "read"]
    refused, searched, read = events
    assert read["action"] == "R"
    assert read["outcome"] == "0"
    assert read["agent"][0]["who"]["identifier"]["value"] == "test-client"
    assert read["agent"][0]["requestor"] is True
    what = references(read)
    assert what == {f"CarePlan/{mine['id']}", f"Patient/{mine['patient_id']}"}

    assert searched["action"] == "E"
    query = next(e["query"] for e in searched["entity"] if "query" in e)
    assert base64.b64decode(query).decode() == "status=draft"
    patients = references(searched)
    assert patients == {f"Patient/{mine['patient_id']}", f"Patient/{theirs['patient_id']}"}

    assert refused["outcome"] == "4"
    assert refused["outcomeDesc"] == "HTTP 403"

    by_patient = await trail(app, client, patient=theirs["patient_id"])
    assert [subtype(e) for e in by_patient] == ["read", "search-type"]
    assert await trail(app, client, agent="someone-else") == []


async def test_unauthenticated_requests_are_audited_too(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    app.dependency_overrides.clear()
    assert (await fhir.get("/Goal/abc")).status_code == 401
    (event,) = await trail(app, client)
    assert event["agent"][0]["who"]["identifier"]["value"] == "unauthenticated"
    assert event["outcome"] == "4"
    assert references(event) == {"Goal/abc"}


async def test_only_admins_read_the_trail(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    issued = ok(await client.post("/api/admin/api-keys", json={"name": "cm"}), 201)
    response = await anonymous.get("/api/admin/audit-events", headers={"X-API-Key": issued["key"]})
    assert response.status_code == 403
