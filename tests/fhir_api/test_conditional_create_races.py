"""Conditional create (`If-None-Exist`) is atomic: concurrent creates of one resource make one,
and the others answer 200 with it (FHIR R4 http.html §3.1.0.8). In one process here (on
PostgreSQL the requests run on separate connections at once); tests/integration runs the same
against a server with two worker processes."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from service.settings import Settings
from tests.api.case_factory import create_patient, ok, open_case
from tests.conftest import settings_for
from tests.fhir_api.conftest import SetScopes
from tests.fhir_api.test_creates_and_deletes import care_plan, goal
from tests.fhir_api.test_transactions import discharge_bundle, post

PLANNER = "https://planner.example.org/plans"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Admission control is not under test here: every concurrent request must reach the
    write path (the in-flight bound would answer some of them 503)."""
    return settings_for(database_url, max_in_flight=0, rate_limits_enabled=False)


async def create_at_once(
    fhir: httpx.AsyncClient, path: str, body: dict[str, Any], criterion: str, times: int = 20
) -> list[httpx.Response]:
    headers = {"If-None-Exist": criterion}
    return list(
        await asyncio.gather(*(fhir.post(path, json=body, headers=headers) for _ in range(times)))
    )


def one_created(responses: list[httpx.Response]) -> str:
    """The id all answers name, after checking one 201 and the rest 200."""
    assert Counter(r.status_code for r in responses) == {201: 1, 200: len(responses) - 1}, [
        r.text for r in responses if r.status_code not in (200, 201)
    ]
    ids: set[str] = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    return ids.pop()


async def test_concurrent_conditional_creates_of_a_care_plan_make_one_case(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    body = care_plan(patient["id"]) | {"identifier": [{"system": PLANNER, "value": "plan-7"}]}
    responses = await create_at_once(fhir, "/CarePlan", body, f"identifier={PLANNER}|plan-7")
    case_id = one_created(responses)
    cases = ok(await client.get("/api/cases", params={"patient_id": patient["id"]}))["items"]
    assert [c["id"] for c in cases] == [case_id]


async def test_concurrent_conditional_creates_of_a_goal_make_one_goal(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    body = goal(case["patient_id"]) | {"identifier": [{"system": PLANNER, "value": "goal-7"}]}
    responses = await create_at_once(fhir, "/Goal", body, f"identifier={PLANNER}|goal-7")
    goal_id = one_created(responses)
    goals = ok(await client.get(f"/api/cases/{case['id']}/goals"))["items"]
    assert [g["id"] for g in goals] == [goal_id]


async def test_concurrent_transactions_reuse_one_new_patient(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    bundle = discharge_bundle("MRN-RACE-1")
    responses = await asyncio.gather(*(post(fhir, bundle) for _ in range(10)))
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    patients = ok(await client.get("/api/patients"))["items"]
    assert [p["family_name"] for p in patients].count("Okafor") == 1
