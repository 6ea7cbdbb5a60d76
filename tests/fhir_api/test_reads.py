"""`/fhir` read, vread and history: stored bytes served with FHIR HTTP semantics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.db.session import Database
from service.fhir_store.models import StoredResource
from tests.api.case_factory import ok, open_case, patch_case
from tests.fhir_api.conftest import SetScopes

FHIR_JSON = "application/fhir+json; charset=utf-8"


def outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return body


async def test_metadata_describes_what_is_implemented(
    fhir: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    response = await anonymous.get("/fhir/metadata")  # public: no token
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(by_type) == {
        "CarePlan", "CareTeam", "Condition", "Goal", "Patient", "Provenance", "ServiceRequest",
        "Practitioner", "Organization",  # the people a case names, read-only
    }  # fmt: skip
    care_plan = by_type["CarePlan"]
    interactions = {i["code"] for i in care_plan["interaction"]}
    assert {"read", "vread", "history-instance", "history-type", "search-type"} <= interactions
    assert {"create", "update"} <= interactions  # a CarePlan alone opens or updates a case
    assert "delete" in interactions  # a case opened in error is withdrawn
    assert care_plan["conditionalDelete"] == "single"
    assert "delete" in {i["code"] for i in by_type["Patient"]["interaction"]}
    # A team entered in error leaves its case; a Provenance is history, never deleted.
    assert "delete" in {i["code"] for i in by_type["CareTeam"]["interaction"]}
    assert "delete" not in {i["code"] for i in by_type["Provenance"]["interaction"]}
    assert "conditionalDelete" not in by_type["Provenance"]
    goal_interactions = {i["code"] for i in by_type["Goal"]["interaction"]}
    assert {"create", "update", "patch", "delete"} <= goal_interactions
    assert by_type["Goal"]["conditionalUpdate"] is True
    assert by_type["Goal"]["conditionalCreate"] is True
    condition = {i["code"] for i in by_type["Condition"]["interaction"]}
    assert {"create", "update"} <= condition  # a need of the patient's case
    assert "delete" in condition  # a need nothing else names may be withdrawn
    assert {"code": "transaction"} in rest["interaction"]
    params = {p["name"] for p in care_plan["searchParam"]}
    assert {"patient", "category", "status", "date", "identifier", "_id", "_lastUpdated"} <= params
    assert {"lifecycle-status", "target-date"} <= {
        p["name"] for p in by_type["Goal"]["searchParam"]
    }
    assert "code" in {p["name"] for p in by_type["ServiceRequest"]["searchParam"]}
    assert any("casebridge-careplan" in p for p in care_plan["supportedProfile"])
    assert care_plan["profile"].startswith("http://hl7.org/fhir/us/core/StructureDefinition/")
    assert "CarePlan:goal" in care_plan["searchInclude"]
    oauth = rest["security"]["extension"][0]["extension"]
    assert oauth[0]["valueUri"].endswith("/auth/token")


async def test_read_serves_the_stored_bytes_with_etag(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, database: Database, scopes: SetScopes
) -> None:
    case = await open_case(client)
    response = await fhir.get(f"/CarePlan/{case['id']}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == FHIR_JSON
    assert response.headers["etag"] == 'W/"1"'
    async with database.sessions() as session:
        row = await session.get(StoredResource, ("CarePlan", case["id"]))
    assert row is not None
    assert response.content == row.content
    assert response.json()["meta"]["versionId"] == "1"

    not_modified = await fhir.get(f"/CarePlan/{case['id']}", headers={"If-None-Match": 'W/"1"'})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    since = response.headers["last-modified"]
    assert (
        await fhir.get(f"/CarePlan/{case['id']}", headers={"If-Modified-Since": since})
    ).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (
        await fhir.get(f"/CarePlan/{case['id']}", headers={"If-Modified-Since": old})
    ).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/CarePlan/no-such-plan", 404),
        ("/Observation/123", 404),
        ("/CarePlan/bad$id", 422),
        ("/CarePlan/x/_history/notanumber", 422),
    ],
)
async def test_read_errors_are_operation_outcomes(
    fhir: httpx.AsyncClient, scopes: SetScopes, path: str, status: int
) -> None:
    outcome(await fhir.get(path), status)


async def test_xml_is_not_acceptable(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    body = outcome(await fhir.get(f"/CarePlan/{case['id']}", params={"_format": "xml"}), 406)
    assert body["issue"][0]["code"] == "not-supported"
    assert (
        await fhir.get(f"/CarePlan/{case['id']}", params={"_format": "json"})
    ).status_code == 200
    outcome(
        await fhir.get(f"/CarePlan/{case['id']}", headers={"Accept": "application/fhir+xml"}), 406
    )


async def test_vread_and_history(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    ok(await patch_case(client, case, status="intake"))
    first = await fhir.get(f"/CarePlan/{case['id']}/_history/1")
    assert first.status_code == 200
    assert first.json()["meta"]["versionId"] == "1"
    assert (await fhir.get(f"/CarePlan/{case['id']}")).json()["meta"]["versionId"] == "2"
    outcome(await fhir.get(f"/CarePlan/{case['id']}/_history/3"), 404)

    history = (await fhir.get(f"/CarePlan/{case['id']}/_history")).json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]

    other = await open_case(client)
    paged = (await fhir.get("/CarePlan/_history", params={"_count": "2"})).json()
    assert [e["resource"]["id"] for e in paged["entry"]] == [other["id"], case["id"]]
    next_url = next(link["url"] for link in paged["link"] if link["relation"] == "next")
    rest = (await fhir.get(next_url)).json()
    assert [e["resource"]["meta"]["versionId"] for e in rest["entry"]] == ["1"]
    assert all(link["relation"] != "next" for link in rest["link"])


async def test_tokens_and_scopes_are_required(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, app: Any, scopes: SetScopes
) -> None:
    case = await open_case(client)
    scopes("system/Goal.rs")
    body = outcome(await fhir.get(f"/CarePlan/{case['id']}"), 403)
    assert body["issue"][0]["code"] == "forbidden"
    outcome(await fhir.get("/CarePlan"), 403)

    app.dependency_overrides.clear()
    unauthenticated = await fhir.get(f"/CarePlan/{case['id']}")
    outcome(unauthenticated, 401)
    # The fixture's token is not a real one: RFC 6750 §3.1 `invalid_token`.
    assert unauthenticated.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_patient_scopes_stay_in_their_compartment(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, database: Database, scopes: SetScopes
) -> None:
    mine, theirs = await open_case(client), await open_case(client)
    scopes("patient/*.rs", patient=mine["patient_id"])
    assert (await fhir.get(f"/CarePlan/{mine['id']}")).status_code == 200
    assert (await fhir.get(f"/Patient/{mine['patient_id']}")).status_code == 200
    outcome(await fhir.get(f"/CarePlan/{theirs['id']}"), 403)
    outcome(await fhir.get(f"/Patient/{theirs['patient_id']}"), 403)
    outcome(await fhir.get(f"/CarePlan/{theirs['id']}/_history"), 403)
    outcome(await fhir.get(f"/CarePlan/{theirs['id']}/_history/1"), 403)

    history = (await fhir.get("/CarePlan/_history")).json()
    assert {e["resource"]["id"] for e in history["entry"]} == {mine["id"]}
    async with database.sessions() as session:
        provenances = list(
            await session.scalars(
                select(StoredResource.id).where(StoredResource.resource_type == "Provenance")
            )
        )
    assert len(provenances) >= 2
    found = (await fhir.get("/Provenance")).json()
    assert found["total"] >= 1
    for entry in found["entry"]:
        assert any(mine["id"] in t["reference"] or mine["patient_id"] in t["reference"]
                   for t in entry["resource"]["target"])  # fmt: skip
