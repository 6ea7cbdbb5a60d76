"""A discharge planner POSTs a transaction Bundle: it becomes a case, all or nothing."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.api.case_factory import create_patient, ok
from tests.fhir_api.conftest import SetScopes
from tests.fhir_api.test_reads import outcome

MRN = "urn:oid:2.16.840.1.113883.19.5"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
UNKNOWN_EXTENSION = {"url": "https://planner.example.org/fx/discharge-unit", "valueString": "4B"}


def discharge_bundle(mrn: str = "MRN-7781") -> dict[str, Any]:
    patient, plan, condition, goal, referral = (
        f"urn:uuid:0000000{i}-0000-4000-8000-000000000000" for i in range(1, 6)
    )
    subject = {"reference": patient}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": MRN, "value": mrn}],
                    "name": [{"family": "Okafor", "given": ["Chidi"]}],
                    "gender": "male",
                    "birthDate": "1951-04-02",
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={MRN}|{mrn}",
                },
            },
            {
                "fullUrl": condition,
                "resource": {
                    "resourceType": "Condition",
                    "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
                    "category": [
                        {"coding": [{"system": CONDITION_CATEGORY, "code": "health-concern"}]}
                    ],
                    "code": {"text": "Cannot manage stairs at home"},
                    "subject": subject,
                },
                "request": {"method": "POST", "url": "Condition"},
            },
            {
                "fullUrl": goal,
                "resource": {
                    "resourceType": "Goal",
                    "extension": [UNKNOWN_EXTENSION],
                    "lifecycleStatus": "active",
                    "description": {"text": "Walk to the bathroom unaided"},
                    "subject": subject,
                    "target": [{"dueDate": "2027-02-15"}],
                    "addresses": [{"reference": condition}],
                },
                "request": {"method": "POST", "url": "Goal"},
            },
            {
                "fullUrl": referral,
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "code": {"text": "Home physical therapy"},
                    "subject": subject,
                    "reasonReference": [{"reference": condition}],
                    "performer": [{"display": "Riverside Home Health"}],
                },
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "fullUrl": plan,
                "resource": {
                    "resourceType": "CarePlan",
                    "status": "active",
                    "intent": "plan",
                    "category": [
                        {"coding": [{"system": CAREPLAN_CATEGORY, "code": "assess-plan"}]}
                    ],
                    "title": "Discharge to home after hip replacement",
                    "subject": subject,
                    "goal": [{"reference": goal}],
                    "addresses": [{"reference": condition}],
                    "activity": [{"reference": {"reference": referral}}],
                },
                "request": {"method": "POST", "url": "CarePlan"},
            },
        ],
    }


async def post(fhir: httpx.AsyncClient, bundle: dict[str, Any]) -> httpx.Response:
    return await fhir.post(
        "http://testserver/fhir", json=bundle, headers={"Content-Type": "application/fhir+json"}
    )


def location(response: dict[str, Any], kind: str) -> str:
    found: list[str] = [e["response"]["location"] for e in response["entry"]]
    (match,) = [loc for loc in found if loc.startswith(kind + "/")]
    return match.split("/")[1]


async def test_a_transaction_becomes_a_case(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    response = await post(fhir, discharge_bundle())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 5
    plan_id, goal_id = location(body, "CarePlan"), location(body, "Goal")
    referral_id, patient_id = location(body, "ServiceRequest"), location(body, "Patient")

    case = ok(await client.get(f"/api/cases/{plan_id}"))
    assert case["patient_id"] == patient_id
    assert case["title"] == "Discharge to home after hip replacement"
    goals = ok(await client.get(f"/api/cases/{plan_id}/goals"))["items"]
    assert [g["id"] for g in goals] == [goal_id]
    needs = ok(await client.get(f"/api/cases/{plan_id}/needs"))["items"]
    assert goals[0]["need_ids"] == [needs[0]["id"]]
    interventions = ok(await client.get(f"/api/cases/{plan_id}/interventions"))["items"]
    assert [i["id"] for i in interventions] == [referral_id]

    plan = (await fhir.get(f"/CarePlan/{plan_id}")).json()
    assert {"reference": f"Goal/{goal_id}"}.items() <= plan["goal"][0].items()
    assert plan["subject"]["reference"] == f"Patient/{patient_id}"
    goal = (await fhir.get(f"/Goal/{goal_id}")).json()
    assert UNKNOWN_EXTENSION in goal["extension"]  # kept for the round trip
    assert goal["addresses"][0]["reference"] == f"Condition/{needs[0]['id']}"
    history = ok(await client.get(f"/api/cases/{plan_id}/history"))
    assert history[0]["actor"] == "client:test-client"


async def test_a_known_patient_is_reused(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    known = await create_patient(client, identifiers=[{"system": MRN, "value": "MRN-1"}])
    body = (await post(fhir, discharge_bundle("MRN-1"))).json()
    assert body["entry"][0]["response"] == {
        "status": "200 OK",
        "location": f"Patient/{known['id']}",
    }
    case = ok(await client.get(f"/api/cases/{location(body, 'CarePlan')}"))
    assert case["patient_id"] == known["id"]
    assert len(ok(await client.get("/api/patients"))["items"]) == 1


async def nothing_stored(client: httpx.AsyncClient) -> None:
    assert ok(await client.get("/api/cases"))["items"] == []
    assert ok(await client.get("/api/patients"))["items"] == []


async def test_an_invalid_entry_rejects_the_whole_bundle(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    bundle = discharge_bundle()
    del bundle["entry"][2]["resource"]["lifecycleStatus"]
    body = outcome(await post(fhir, bundle), 422)
    assert any("lifecycleStatus" in e for i in body["issue"] for e in i.get("expression", []))
    await nothing_stored(client)


async def test_an_entry_outside_the_scopes_rejects_the_bundle(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    scopes("system/CarePlan.c system/Goal.c system/Condition.c system/Patient.c")
    body = outcome(await post(fhir, discharge_bundle()), 403)
    assert "ServiceRequest" in body["issue"][0]["diagnostics"]
    await nothing_stored(client)


async def test_entries_about_different_patients_are_refused(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    """Otherwise a token confined to one patient could slip in a case for another."""
    known, other = await create_patient(client), await create_patient(client)
    scopes("patient/*.c", patient=known["id"])
    bundle = discharge_bundle()
    bundle["entry"] = bundle["entry"][1:]  # no Patient entry: the plan names another patient
    for entry in bundle["entry"]:
        entry["resource"]["subject"] = {"reference": f"Patient/{known['id']}"}
    bundle["entry"][-1]["resource"]["subject"] = {"reference": f"Patient/{other['id']}"}
    body = outcome(await post(fhir, bundle), 422)
    assert body["issue"][0]["expression"] == ["Bundle.entry.resource.subject"]
    assert ok(await client.get("/api/cases"))["items"] == []


async def test_a_patient_scope_cannot_write_another_patients_case(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    scopes("patient/*.c", patient="someone-else")
    outcome(await post(fhir, discharge_bundle()), 403)
    await nothing_stored(client)


@pytest.mark.parametrize(
    ("change", "status", "expression"),
    [
        (lambda b: b.update(type="collection"), 400, "Bundle.type"),
        (
            lambda b: b["entry"][1]["request"].update(method="TRACE"),
            400,
            "Bundle.entry[1].request.method",
        ),
        (lambda b: b["entry"][1]["request"].update(url="Goal"), 400, "Bundle.entry[1].request.url"),
        (
            lambda b: b["entry"][1].update(resource={"resourceType": "Observation"}),
            422,
            "Bundle.entry[1].resource",
        ),
        (lambda b: b.update(entry=[]), 400, "Bundle.entry"),
        (
            lambda b: b["entry"][0]["request"].update(ifNoneExist="name=x"),
            400,
            "Bundle.entry[0].request.ifNoneExist",
        ),
    ],
)
async def test_malformed_transactions_are_refused(
    fhir: httpx.AsyncClient,
    client: httpx.AsyncClient,
    scopes: SetScopes,
    change: Any,
    status: int,
    expression: str,
) -> None:
    bundle = copy.deepcopy(discharge_bundle())
    change(bundle)
    body = outcome(await post(fhir, bundle), status)
    assert body["issue"][0]["expression"] == [expression]
    await nothing_stored(client)


async def test_a_body_that_is_not_json_is_400(fhir: httpx.AsyncClient, scopes: SetScopes) -> None:
    response = await fhir.post(
        "http://testserver/fhir",
        content=b"{not json",
        headers={"Content-Type": "application/fhir+json"},
    )
    outcome(response, 400)


def _completed_referral_without_outcome(bundle: dict[str, Any]) -> None:
    bundle["entry"][3]["resource"]["status"] = "completed"


def _goal_achieved_in_a_planned_case(bundle: dict[str, Any]) -> None:
    bundle["entry"][2]["resource"]["achievementStatus"] = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "achieved"}
        ]
    }
    bundle["entry"][4]["resource"]["status"] = "draft"


def _scheduled_backwards(bundle: dict[str, Any]) -> None:
    bundle["entry"][3]["resource"]["occurrencePeriod"] = {
        "start": "2027-02-10T09:00:00Z",
        "end": "2027-02-01T09:00:00Z",
    }


@pytest.mark.parametrize(
    ("breaks", "entry", "diagnostics"),
    [
        (_completed_referral_without_outcome, 3, "a referral completes only with its"),
        (_goal_achieved_in_a_planned_case, 2, "a goal can be achieved only while its case"),
        (_scheduled_backwards, 3, "scheduled_end is before scheduled_start"),
    ],
)
async def test_a_received_case_is_held_to_the_rules_of_api(
    fhir: httpx.AsyncClient,
    client: httpx.AsyncClient,
    scopes: SetScopes,
    breaks: Any,
    entry: int,
    diagnostics: str,
) -> None:
    """The import runs the same rule functions as `/api` (`cases.importer.check_received_case`):
    a received case that breaks one is refused whole, naming the rule and the entry."""
    bundle = discharge_bundle()
    breaks(bundle)
    body = outcome(await post(fhir, bundle), 409)
    issue = body["issue"][0]
    assert diagnostics in issue["diagnostics"]
    assert issue["expression"] == [f"Bundle.entry[{entry}].resource"]
    await nothing_stored(client)
