"""`$validate`: structure and profile findings as an OperationOutcome; nothing stored."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fhir_api.conftest import SetScopes
from tests.fhir_api.test_reads import outcome

GOAL: dict[str, Any] = {
    "resourceType": "Goal",
    "lifecycleStatus": "active",
    "description": {"text": "Walk unaided"},
    "subject": {"reference": "Patient/p1"},
}


async def validate(fhir: httpx.AsyncClient, body: dict[str, Any], **params: str) -> dict[str, Any]:
    response = await fhir.post("/Goal/$validate", json=body, params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["resourceType"] == "OperationOutcome"
    return result


def errors(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in result["issue"] if i["severity"] == "error"]


async def test_a_valid_goal_passes(fhir: httpx.AsyncClient, scopes: SetScopes) -> None:
    result = await validate(fhir, GOAL)
    assert errors(result) == []
    assert result["issue"][0]["diagnostics"] == "valid"
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": GOAL}]}
    assert errors(await validate(fhir, wrapped)) == []


async def test_structure_errors_point_at_the_element(
    fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    result = await validate(fhir, GOAL | {"lifecycleStatus": "someday"})
    found = errors(result)
    assert found
    assert {e for i in found for e in i["expression"]} == {"Goal.lifecycleStatus"}


async def test_profile_errors_are_reported(fhir: httpx.AsyncClient, scopes: SetScopes) -> None:
    """Valid R4, but US Core wants the assess-plan category."""
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
    }
    response = await fhir.post("/CarePlan/$validate", json=plan)
    assert response.status_code == 200
    found = errors(response.json())
    places = {e for i in found for e in i["expression"]}
    assert "CarePlan.category" in places
    for version in ("6.1.0", "7.0.0"):
        assert any(f"us-core-careplan|{version}" in i["diagnostics"] for i in found)


async def test_bad_requests(fhir: httpx.AsyncClient, scopes: SetScopes) -> None:
    outcome(await fhir.post("/Goal/$validate", json={"resourceType": "CarePlan"}), 400)
    outcome(
        await fhir.post(
            "/Goal/$validate", content=b"[", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    outcome(await fhir.post("/Goal/$validate", json=GOAL, params={"profile": "http://x/y"}), 404)
