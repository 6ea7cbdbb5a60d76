"""Identifiers in CaseBridge's own systems are the server's to assign: a client cannot put
another record's on its resource, so a search on one never finds two."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from mappings.canonical import IDENTIFIER_SYSTEM
from tests.api.case_factory import ok, open_case
from tests.fhir_api.conftest import SetScopes, planned_case
from tests.fhir_api.test_creates_and_deletes import care_plan, goal
from tests.fhir_api.test_reads import outcome
from tests.fhir_api.test_transactions import discharge_bundle, post


async def found(fhir: httpx.AsyncClient, resource_type: str, system: str, value: str) -> list[str]:
    bundle = ok(await fhir.get(f"/{resource_type}", params={"identifier": f"{system}|{value}"}))
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


async def test_a_create_cannot_take_another_resources_identifier(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    patient_id, goal_id = plan["case"]["patient_id"], plan["goal"]["id"]
    stolen = {"system": IDENTIFIER_SYSTEM["Goal"], "value": goal_id}
    mine = {"system": "https://planner.example.org/goals", "value": "g-1"}
    body = goal(patient_id) | {"identifier": [mine, stolen]}
    refused = outcome(await fhir.post("/Goal", json=body), 422)
    assert refused["issue"][0]["expression"] == ["Goal.identifier[1]"]
    assert refused["issue"][0]["code"] == "business-rule"
    assert await found(fhir, "Goal", stolen["system"], goal_id) == [goal_id]

    # Any of the service's systems, on any type: a new resource has none of them yet.
    case_identifier = {"system": IDENTIFIER_SYSTEM["CarePlan"], "value": plan["case"]["id"]}
    refused = outcome(
        await fhir.post(
            "/CarePlan", json=care_plan(patient_id) | {"identifier": [case_identifier]}
        ),
        422,
    )
    assert refused["issue"][0]["expression"] == ["CarePlan.identifier[0]"]
    unguessed = {"system": IDENTIFIER_SYSTEM["Goal"], "value": "not-yet-assigned"}
    outcome(await fhir.post("/Goal", json=goal(patient_id) | {"identifier": [unguessed]}), 422)

    created = await fhir.post("/Goal", json=goal(patient_id) | {"identifier": [mine]})
    assert created.status_code == 201, created.text  # the client's own systems are its own
    assert mine in created.json()["identifier"]


async def test_an_update_keeps_its_own_identifier_and_cannot_take_another(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    goal_id = plan["goal"]["id"]
    other = ok(
        await client.post(
            f"/api/cases/{plan['case']['id']}/goals", json={"description": "Second goal"}
        ),
        201,
    )
    read = await fhir.get(f"/Goal/{goal_id}")
    current: dict[str, Any] = read.json()
    kept = await fhir.put(
        f"/Goal/{goal_id}", json=current, headers={"If-Match": read.headers["etag"]}
    )
    assert kept.status_code == 200, kept.text  # read-modify-write sends its own back

    taken = copy.deepcopy(kept.json())
    taken["identifier"].append({"system": IDENTIFIER_SYSTEM["Goal"], "value": other["id"]})
    refused = outcome(await fhir.put(f"/Goal/{goal_id}", json=taken), 422)
    assert refused["issue"][0]["expression"] == [f"Goal.identifier[{len(taken['identifier']) - 1}]"]
    assert await found(fhir, "Goal", IDENTIFIER_SYSTEM["Goal"], other["id"]) == [other["id"]]

    plan_read = (await fhir.get(f"/CarePlan/{plan['case']['id']}")).json()
    plan_read["identifier"] = [{"system": IDENTIFIER_SYSTEM["CarePlan"], "value": "another-case"}]
    outcome(await fhir.put(f"/CarePlan/{plan['case']['id']}", json=plan_read), 422)


async def test_a_transaction_entry_cannot_carry_an_assigned_identifier(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    existing = await open_case(client)
    bundle = discharge_bundle("MRN-OWN-1")
    plan_entry = bundle["entry"][4]["resource"]
    plan_entry["identifier"] = [{"system": IDENTIFIER_SYSTEM["CarePlan"], "value": existing["id"]}]
    refused = outcome(await post(fhir, bundle), 422)
    assert refused["issue"][0]["expression"] == ["Bundle.entry[4].resource.identifier[0]"]
    assert await found(fhir, "CarePlan", IDENTIFIER_SYSTEM["CarePlan"], existing["id"]) == [
        existing["id"]
    ]
