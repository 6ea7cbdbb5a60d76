"""`PUT /fhir/Goal|ServiceRequest/{id}`: a new version of a case's goal or referral, applied
through the domain rules, with If-Match, conditional update by identifier, and Prefer."""

from __future__ import annotations

from typing import Any

import httpx

from mappings.canonical import EXT_CLOSURE_REASON, NEED_DOMAIN_SYSTEM
from tests.api.case_factory import ok, open_case
from tests.fhir_api.conftest import SetScopes, planned_case
from tests.fhir_api.test_reads import outcome

FOREIGN = {"url": "https://ehr.example.org/fx/reviewed-by", "valueString": "Dr. Ames"}


async def read(fhir: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await fhir.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_put_updates_the_goal_through_the_case(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    goal_id, case_id = plan["goal"]["id"], plan["case"]["id"]
    goal = await read(fhir, f"/Goal/{goal_id}")
    goal["lifecycleStatus"] = "on-hold"
    goal["extension"] = [*goal.get("extension", []), FOREIGN]
    response = await fhir.put(f"/Goal/{goal_id}", json=goal, headers={"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["location"].endswith(f"/Goal/{goal_id}/_history/2")
    stored = response.json()
    assert stored["lifecycleStatus"] == "on-hold"
    assert FOREIGN in stored["extension"]  # kept for the round trip

    row = ok(await client.get(f"/api/cases/{case_id}/goals/{goal_id}"))
    assert row["lifecycle_status"] == "on_hold"
    history = ok(await client.get(f"/api/cases/{case_id}/history"))
    assert history[-1]["actor"] == "client:test-client"
    assert history[-1]["changes"]["lifecycle_status"] == ["active", "on_hold"]

    stale = await fhir.put(f"/Goal/{goal_id}", json=goal, headers={"If-Match": 'W/"1"'})
    outcome(stale, 412)


async def test_domain_rules_hold_on_fhir_updates(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    referral_id = plan["referral"]["id"]
    referral = await read(fhir, f"/ServiceRequest/{referral_id}")
    referral["status"] = "completed"  # a referral completes only with an outcome
    body = outcome(await fhir.put(f"/ServiceRequest/{referral_id}", json=referral), 409)
    assert "outcome" in body["issue"][0]["diagnostics"]
    assert (await read(fhir, f"/ServiceRequest/{referral_id}"))["meta"]["versionId"] == "1"


async def test_conditional_update_by_identifier(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    goal = await read(fhir, f"/Goal/{plan['goal']['id']}")
    identifier = goal["identifier"][0]
    goal["description"]["text"] = "Stable housing within 60 days"
    response = await fhir.put(
        "/Goal", params={"identifier": f"{identifier['system']}|{identifier['value']}"}, json=goal
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"]["text"] == "Stable housing within 60 days"
    missing = await fhir.put("/Goal", params={"identifier": "urn:x|nope"}, json=goal)
    outcome(missing, 404)
    outcome(await fhir.put("/Goal", params={"status": "active"}, json=goal), 400)


async def test_prefer_return(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    goal = await read(fhir, f"/Goal/{plan['goal']['id']}")
    minimal = await fhir.put(f"/Goal/{goal['id']}", json=goal, headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 200
    assert minimal.content == b""
    assert minimal.headers["etag"].startswith('W/"')
    as_outcome = await fhir.put(
        f"/Goal/{goal['id']}", json=goal, headers={"Prefer": "return=OperationOutcome"}
    )
    assert as_outcome.json()["resourceType"] == "OperationOutcome"


async def test_bad_updates(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    goal = await read(fhir, f"/Goal/{plan['goal']['id']}")
    other = await open_case(client)
    outcome(await fhir.put(f"/Goal/{goal['id']}", json=goal | {"id": "other"}), 400)
    moved = goal | {"subject": {"reference": f"Patient/{other['patient_id']}"}}
    body = outcome(await fhir.put(f"/Goal/{goal['id']}", json=moved), 422)
    assert body["issue"][0]["expression"] == ["Goal.subject"]
    invalid = goal | {"lifecycleStatus": "someday"}
    body = outcome(await fhir.put(f"/Goal/{goal['id']}", json=invalid), 422)
    assert any("Goal.lifecycleStatus" in e for i in body["issue"] for e in i["expression"])
    outcome(await fhir.put(f"/Goal/{goal['id']}", json=goal, headers={"If-Match": "3"}), 400)
    condition = await read(fhir, f"/Condition/{plan['need']['id']}")
    other_domain = [{"coding": [{"system": NEED_DOMAIN_SYSTEM, "code": "food"}]}]
    moved = condition | {"category": other_domain}
    body = outcome(await fhir.put(f"/Condition/{condition['id']}", json=moved), 422)
    assert body["issue"][0]["expression"] == ["Condition.category"]
    # No update-as-create (R4 http.html#update): ids are the server's.
    outcome(await fhir.put("/Goal/unknown", json=goal | {"id": "unknown"}), 405)
    scopes("system/Goal.rs")
    outcome(await fhir.put(f"/Goal/{goal['id']}", json=goal), 403)
    assert (await read(fhir, f"/Goal/{goal['id']}"))["meta"]["versionId"] == "1"


async def test_put_care_plan_updates_the_case(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    case_id = plan["case"]["id"]
    care_plan = await read(fhir, f"/CarePlan/{case_id}")
    version = care_plan["meta"]["versionId"]
    care_plan["title"] = "Housing first, then benefits"
    care_plan["extension"] = [*care_plan.get("extension", []), FOREIGN]
    response = await fhir.put(
        f"/CarePlan/{case_id}", json=care_plan, headers={"If-Match": f'W/"{version}"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Housing first, then benefits"
    assert FOREIGN in response.json()["extension"]  # kept for the round trip
    case = ok(await client.get(f"/api/cases/{case_id}"))
    assert case["title"] == "Housing first, then benefits"
    assert case["status"] == "active"

    # Closing through the FHIR status: the case's lifecycle rules still apply.
    closing = response.json()
    closing["status"] = "completed"
    refused = outcome(await fhir.put(f"/CarePlan/{case_id}", json=closing), 409)
    assert "closure_reason" in refused["issue"][0]["diagnostics"]
    closing["extension"].append({"url": EXT_CLOSURE_REASON, "valueCode": "goals_met"})
    # Its goal and referral are open: the closure is refused and names them, as on /api.
    refused = outcome(await fhir.put(f"/CarePlan/{case_id}", json=closing), 409)
    diagnostics = refused["issue"][0]["diagnostics"]
    assert f"Goal/{plan['goal']['id']}" in diagnostics
    assert f"ServiceRequest/{plan['referral']['id']}" in diagnostics
    goal = await read(fhir, f"/Goal/{plan['goal']['id']}")
    ok(await fhir.put(f"/Goal/{goal['id']}", json=goal | {"lifecycleStatus": "cancelled"}))
    referral = await read(fhir, f"/ServiceRequest/{plan['referral']['id']}")
    ok(await fhir.put(f"/ServiceRequest/{referral['id']}", json=referral | {"status": "revoked"}))
    closed = await fhir.put(f"/CarePlan/{case_id}", json=closing)
    assert closed.status_code == 200, closed.text
    case = ok(await client.get(f"/api/cases/{case_id}"))
    assert (case["status"], case["closure_reason"]) == ("closed", "goals_met")
    assert closed.json()["period"]["end"]


async def test_put_care_plan_refuses_changes_owned_by_other_records(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    case_id = plan["case"]["id"]
    care_plan = await read(fhir, f"/CarePlan/{case_id}")
    version = care_plan["meta"]["versionId"]
    without_goal = {k: v for k, v in care_plan.items() if k != "goal"}
    body = outcome(await fhir.put(f"/CarePlan/{case_id}", json=without_goal), 422)
    assert body["issue"][0]["expression"] == ["CarePlan.goal"]
    assert "Goal" in body["issue"][0]["diagnostics"]
    moved = {**care_plan, "period": {"start": "2020-01-01"}}
    outcome(await fhir.put(f"/CarePlan/{case_id}", json=moved), 422)
    assert (await read(fhir, f"/CarePlan/{case_id}"))["meta"]["versionId"] == version
    goals = ok(await client.get(f"/api/cases/{case_id}/goals"))["items"]
    assert [g["id"] for g in goals] == [plan["goal"]["id"]]
