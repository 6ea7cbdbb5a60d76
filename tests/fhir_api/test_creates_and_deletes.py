"""`POST /fhir/{type}` (create, conditional create with If-None-Exist) and
`DELETE /fhir/{type}/{id}` (withdrawing a proposed goal or a draft referral)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.case_factory import create_patient, ok, open_case
from tests.fhir_api.conftest import SetScopes, planned_case
from tests.fhir_api.test_reads import outcome
from tests.fhir_api.test_transactions import CAREPLAN_CATEGORY


def care_plan(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": "client-chosen",  # a create ignores it: the server assigns ids
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": CAREPLAN_CATEGORY, "code": "assess-plan"}]}],
        "title": "Home after the fall",
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def goal(patient_id: str, status: str = "proposed") -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": status,
        "description": {"text": "Attend the falls clinic"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "extension": [{"url": "https://ehr.example.org/fx/source", "valueString": "planner"}],
    }


def referral(patient_id: str, case_id: str, status: str = "draft") -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": status,
        "intent": "order",
        "code": {"text": "Home safety assessment"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "basedOn": [{"reference": f"CarePlan/{case_id}"}],
        "performer": [{"display": "Riverside Home Health"}],
    }


async def test_a_care_plan_creates_a_case(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    response = await fhir.post("/CarePlan", json=care_plan(patient["id"]))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] != "client-chosen"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"/CarePlan/{created['id']}/_history/1")
    case = ok(await client.get(f"/api/cases/{created['id']}"))
    assert (case["patient_id"], case["title"]) == (patient["id"], "Home after the fall")
    assert (await fhir.get(f"/CarePlan/{created['id']}")).json() == created


async def test_goal_and_referral_join_their_case(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    case = await open_case(client, patient_id=patient["id"])
    created_goal = await fhir.post("/Goal", json=goal(patient["id"]))
    assert created_goal.status_code == 201, created_goal.text
    goal_id = created_goal.json()["id"]
    goals = ok(await client.get(f"/api/cases/{case['id']}/goals"))["items"]
    assert [g["id"] for g in goals] == [goal_id]
    assert goals[0]["description"] == "Attend the falls clinic"
    assert created_goal.json()["extension"][0]["valueString"] == "planner"  # kept

    created_referral = await fhir.post(
        "/ServiceRequest",
        json=referral(patient["id"], case["id"]),
        headers={"Prefer": "return=minimal"},
    )
    assert created_referral.status_code == 201, created_referral.text
    assert created_referral.content == b""
    referral_id = created_referral.headers["location"].split("/ServiceRequest/")[1].split("/")[0]
    interventions = ok(await client.get(f"/api/cases/{case['id']}/interventions"))["items"]
    assert [(i["id"], i["kind"]) for i in interventions] == [(referral_id, "referral")]
    plan = (await fhir.get(f"/CarePlan/{case['id']}")).json()
    assert {"reference": f"Goal/{goal_id}"}.items() <= plan["goal"][0].items()


async def test_conditional_create_finds_what_exists(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    patient_id, case_id = plan["case"]["patient_id"], plan["case"]["id"]
    existing = (await fhir.get(f"/CarePlan/{case_id}")).json()
    identifier = existing["identifier"][0]
    criterion = f"identifier={identifier['system']}|{identifier['value']}"
    again = await fhir.post(
        "/CarePlan", json=care_plan(patient_id), headers={"If-None-Exist": criterion}
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == case_id
    cases = ok(await client.get("/api/cases", params={"patient_id": patient_id}))["items"]
    assert len(cases) == 1

    fresh = await fhir.post(
        "/CarePlan",
        json=care_plan(patient_id),
        headers={"If-None-Exist": f"identifier={identifier['system']}|no-such-case"},
    )
    assert fresh.status_code == 201
    unsupported = await fhir.post(
        "/CarePlan", json=care_plan(patient_id), headers={"If-None-Exist": "title=Home"}
    )
    assert "identifier" in outcome(unsupported, 400)["issue"][0]["diagnostics"]


async def test_creates_that_cannot_be_placed_are_refused(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    await open_case(client, patient_id=patient["id"])
    await open_case(client, patient_id=patient["id"])
    two = outcome(await fhir.post("/Goal", json=goal(patient["id"])), 422)
    assert "2 open cases" in two["issue"][0]["diagnostics"]
    two_plans = referral(patient["id"], "x")
    two_plans["basedOn"] = [{"reference": "CarePlan/a"}, {"reference": "CarePlan/b"}]
    assert outcome(await fhir.post("/ServiceRequest", json=two_plans), 422)["issue"][0][
        "expression"
    ] == ["ServiceRequest.basedOn"]
    provenance = {"resourceType": "Provenance"}
    outcome(await fhir.post("/Provenance", json=provenance), 422)
    outcome(await fhir.post("/Goal", json=care_plan(patient["id"])), 400)  # wrong type
    outcome(await fhir.post("/Goal", content=b"{not json"), 400)


async def test_another_patients_case_cannot_be_joined(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    other = await create_patient(client)
    refused = await fhir.post("/ServiceRequest", json=referral(other["id"], plan["case"]["id"]))
    outcome(refused, 422)
    scopes("patient/*.cruds", patient=other["id"])
    own_patient = plan["case"]["patient_id"]
    outcome(await fhir.post("/ServiceRequest", json=referral(own_patient, plan["case"]["id"])), 403)


async def test_create_needs_the_create_scope(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    scopes("system/CarePlan.rus")
    outcome(await fhir.post("/CarePlan", json=care_plan(patient["id"])), 403)
    assert ok(await client.get("/api/cases", params={"patient_id": patient["id"]}))["items"] == []


async def test_delete_withdraws_a_proposed_goal(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    case = await open_case(client, patient_id=patient["id"])
    goal_id = (await fhir.post("/Goal", json=goal(patient["id"]))).json()["id"]

    response = await fhir.delete(f"/Goal/{goal_id}")
    assert response.status_code == 204, response.text
    assert response.headers["etag"] == 'W/"2"'
    outcome(await fhir.get(f"/Goal/{goal_id}"), 410)
    history = (await fhir.get(f"/Goal/{goal_id}/_history")).json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert ok(await client.get(f"/api/cases/{case['id']}/goals"))["items"] == []
    plan = (await fhir.get(f"/CarePlan/{case['id']}")).json()
    assert "goal" not in plan
    events = ok(await client.get(f"/api/cases/{case['id']}/history"))
    assert (events[-1]["action"], events[-1]["entity_id"]) == ("deleted", goal_id)
    # Deleting it again has no effect (FHIR R4 http.html#delete): the same answer, no version.
    again = await fhir.delete(f"/Goal/{goal_id}")
    assert again.status_code == 204
    assert again.headers["etag"] == 'W/"2"'


async def test_delete_refuses_what_the_case_record_needs(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    active_goal = outcome(await fhir.delete(f"/Goal/{plan['goal']['id']}"), 409)
    assert "cancel" in active_goal["issue"][0]["diagnostics"]
    active_referral = outcome(await fhir.delete(f"/ServiceRequest/{plan['referral']['id']}"), 409)
    assert "revoke" in active_referral["issue"][0]["diagnostics"]
    plan_outcome = outcome(await fhir.delete(f"/CarePlan/{plan['case']['id']}"), 409)
    assert "completed or revoked" in plan_outcome["issue"][0]["diagnostics"]
    outcome(await fhir.delete("/Goal/no-such-goal"), 404)
    assert (await fhir.get(f"/Goal/{plan['goal']['id']}")).status_code == 200

    draft = await fhir.post(
        "/ServiceRequest", json=referral(plan["case"]["patient_id"], plan["case"]["id"])
    )
    draft_id = draft.json()["id"]
    scopes("system/ServiceRequest.rus")
    outcome(await fhir.delete(f"/ServiceRequest/{draft_id}"), 403)
    scopes("system/ServiceRequest.d")
    deleted = await fhir.delete(
        f"/ServiceRequest/{draft_id}", headers={"Prefer": "return=OperationOutcome"}
    )
    assert deleted.status_code == 200
    assert deleted.json()["issue"][0]["severity"] == "information"


async def test_patch_takes_a_json_patch_only(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    await open_case(client, patient_id=patient["id"])
    goal_id = (await fhir.post("/Goal", json=goal(patient["id"]))).json()["id"]
    patch = [{"op": "replace", "path": "/description/text", "value": "Walk to the shop"}]
    # FHIRPath Patch (a Parameters body) and merge patches are not served: 415, saying what is.
    refused = outcome(await fhir.patch(f"/Goal/{goal_id}", json=patch), 415)
    assert "application/json-patch+json" in refused["issue"][0]["diagnostics"]
    response = await fhir.patch(
        f"/Goal/{goal_id}",
        content=httpx.Request("PATCH", "/", json=patch).content,
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"]["text"] == "Walk to the shop"
    assert response.headers["etag"] == 'W/"2"'
