"""`POST /fhir` with a batch Bundle: independent entries, each with its own outcome, scope
check and audit event."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.case_factory import create_patient, ok, open_case
from tests.fhir_api.conftest import SetScopes, planned_case
from tests.fhir_api.test_audit import references, subtype, trail
from tests.fhir_api.test_creates_and_deletes import goal
from tests.fhir_api.test_reads import outcome


def batch(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


async def post(fhir: httpx.AsyncClient, bundle: dict[str, Any]) -> dict[str, Any]:
    response = await fhir.post("http://testserver/fhir", json=bundle)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "batch-response"
    assert len(body["entry"]) == len(bundle["entry"])
    return body


async def test_entries_succeed_and_fail_independently(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    goal_id, case_id = plan["goal"]["id"], plan["case"]["id"]
    patient_id = plan["case"]["patient_id"]
    current_goal = (await fhir.get(f"/Goal/{goal_id}")).json()
    current_goal["lifecycleStatus"] = "on-hold"
    body = await post(
        fhir,
        batch(
            {"request": {"method": "GET", "url": f"CarePlan/{case_id}"}},
            {"request": {"method": "GET", "url": "Goal/does-not-exist"}},
            {
                "request": {"method": "PUT", "url": f"Goal/{goal_id}", "ifMatch": 'W/"1"'},
                "resource": current_goal,
            },
            {
                "request": {"method": "PUT", "url": f"Goal/{goal_id}", "ifMatch": 'W/"1"'},
                "resource": current_goal,
            },  # now stale: the entry before made version 2
            {"request": {"method": "GET", "url": f"Goal?patient={patient_id}"}},
            {"request": {"method": "POST", "url": "Goal"}, "resource": goal(patient_id)},
        ),
    )
    read, missing, updated, stale, search, created = body["entry"]
    assert read["response"]["status"] == "200 OK"
    assert read["resource"]["id"] == case_id
    assert read["response"]["etag"] == f'W/"{read["resource"]["meta"]["versionId"]}"'
    assert read["fullUrl"] == f"http://testserver/fhir/CarePlan/{case_id}"
    assert missing["response"]["status"] == "404 Not Found"
    assert missing["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert updated["response"]["status"] == "200 OK"
    assert updated["resource"]["lifecycleStatus"] == "on-hold"
    assert updated["response"]["lastModified"].endswith("Z")
    assert stale["response"]["status"] == "412 Precondition Failed"
    assert search["resource"]["type"] == "searchset"
    assert search["resource"]["total"] == 1
    assert created["response"]["status"] == "201 Created"  # the patient's one open case
    assert created["response"]["location"].startswith(
        f"http://testserver/fhir/Goal/{created['resource']['id']}/_history/"
    )
    goals = ok(await client.get(f"/api/cases/{case_id}/goals"))["items"]
    assert {g["id"] for g in goals} == {goal_id, created["resource"]["id"]}


async def test_each_entry_is_checked_against_the_scopes(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    mine = await open_case(client)
    theirs = await open_case(client)
    scopes("patient/CarePlan.rs", patient=mine["patient_id"])
    body = await post(
        fhir,
        batch(
            {"request": {"method": "GET", "url": f"CarePlan/{mine['id']}"}},
            {"request": {"method": "GET", "url": f"CarePlan/{theirs['id']}"}},
            {
                "request": {"method": "POST", "url": "CarePlan"},
                "resource": {
                    "resourceType": "CarePlan",
                    "status": "active",
                    "intent": "plan",
                    "subject": {"reference": f"Patient/{mine['patient_id']}"},
                },
            },
        ),
    )
    statuses = [e["response"]["status"] for e in body["entry"]]  # no create in the scopes
    assert statuses[0] == "200 OK"
    assert statuses[1] in {"403 Forbidden", "404 Not Found"}
    assert "resource" not in body["entry"][1]  # nothing of the other patient leaks
    assert statuses[2] == "403 Forbidden"


async def test_each_entry_is_audited(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes, app: FastAPI
) -> None:
    case = await open_case(client)
    await post(
        fhir,
        batch(
            {"request": {"method": "GET", "url": f"CarePlan/{case['id']}"}},
            {"request": {"method": "GET", "url": f"Patient/{case['patient_id']}"}},
        ),
    )
    events = await trail(app, client)
    assert [subtype(e) for e in events[:3]] == ["batch", "read", "read"]  # newest first
    assert events[1]["entity"][0]["what"]["reference"].startswith("Patient/")


@pytest.mark.parametrize(
    ("entry", "expression"),
    [
        ({"request": {"method": "TRACE", "url": "Goal/x"}}, "Bundle.entry[0].request.method"),
        ({"request": {"method": "PATCH", "url": "Goal/x"}}, "Bundle.entry[0].resource"),
        ({"request": {"method": "GET", "url": "https://elsewhere.example/Goal/1"}}, None),
        ({"request": {"method": "POST", "url": ""}, "resource": {}}, None),
        ({"request": {"method": "GET", "url": "Patient/../../api/cases"}}, None),
        ({"request": {"method": "GET", "url": "Patient/%2e%2e/%2E%2E/api/cases"}}, None),
        ({"request": {"method": "POST", "url": "Goal"}}, "Bundle.entry[0].resource"),
        ({"fullUrl": "x"}, "Bundle.entry[0].request"),
    ],
)
async def test_malformed_entries_get_their_own_outcome(
    fhir: httpx.AsyncClient, scopes: SetScopes, entry: dict[str, Any], expression: str | None
) -> None:
    body = await post(fhir, batch(entry, {"request": {"method": "GET", "url": "metadata"}}))
    bad, fine = body["entry"]
    assert bad["response"]["status"] == "400 Bad Request"
    issue = bad["response"]["outcome"]["issue"][0]
    if expression:
        assert issue["expression"] == [expression]
    assert fine["response"]["status"] == "200 OK"


async def test_an_empty_batch_is_refused(fhir: httpx.AsyncClient, scopes: SetScopes) -> None:
    response = await fhir.post("http://testserver/fhir", json=batch())
    assert outcome(response, 400)["issue"][0]["expression"] == ["Bundle.entry"]


async def test_a_batch_can_create_several_cases(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient['id']}"},
    }
    body = await post(
        fhir,
        batch(*({"request": {"method": "POST", "url": "CarePlan"}, "resource": plan},) * 2),
    )
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 2
    cases = ok(await client.get("/api/cases", params={"patient_id": patient["id"]}))["items"]
    assert len(cases) == 2


async def test_an_entry_that_fails_on_the_server_has_its_own_audit_record(
    fhir: httpx.AsyncClient,
    client: httpx.AsyncClient,
    scopes: SetScopes,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = await planned_case(client)
    goal_id, case_id = plan["goal"]["id"], plan["case"]["id"]
    current_goal = (await fhir.get(f"/Goal/{goal_id}")).json()
    current_goal["lifecycleStatus"] = "on-hold"

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("a bug in the update")

    monkeypatch.setattr("service.fhir_engine.updates.update_resource", broken)
    body = await post(
        fhir,
        batch(
            {"request": {"method": "PUT", "url": f"Goal/{goal_id}"}, "resource": current_goal},
            {"request": {"method": "GET", "url": f"CarePlan/{case_id}"}},
        ),
    )
    failed, read = body["entry"]
    assert failed["response"]["status"] == "500 Internal Server Error"
    assert read["response"]["status"] == "200 OK"  # the other entry stands

    events = await trail(app, client)
    assert [subtype(e) for e in events[:3]] == ["batch", "read", "update"]  # newest first
    update = events[2]
    assert update["outcome"] == "8"  # a serious failure: ours
    assert update["outcomeDesc"] == "HTTP 500"
    assert references(update) == {f"Goal/{goal_id}"}
    unchanged = (await fhir.get(f"/Goal/{goal_id}")).json()
    assert unchanged["lifecycleStatus"] != "on-hold"  # the entry's change rolled back
