"""Concurrent writes against one real server with two worker processes (uvicorn `--workers 2`),
on the suite's database (a SQLite file, or PostgreSQL with CASEBRIDGE_TEST_DATABASE_URL):
20 conditional creates of one CarePlan and of one Goal, and 20 POSTs with one Idempotency-Key,
each make exactly one resource. In-process versions of these run in tests/fhir_api; here the
requests also race across processes, which no in-process lock can order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from service.db.models_registry import Base
from service.db.session import Database
from service.settings import Settings
from tests.api.case_factory import create_patient, ok, open_case
from tests.conftest import BOOTSTRAP_KEY, settings_for
from tests.fhir_api.test_creates_and_deletes import care_plan, goal
from tests.fhir_api.test_idempotency import answer
from tests.integration.casebridge_server import casebridge_server
from tests.integration.test_independent_clients import access_token

pytestmark = pytest.mark.integration

PLANNER = "https://planner.example.org/plans"
AT_ONCE = 20


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module (starting two workers is the slow part); its rows are
    deleted afterwards, as the `database` fixture does after each test."""
    settings = settings_for(database_url)
    assert settings.encryption_key is not None
    with casebridge_server(
        database_url,
        settings.encryption_key.get_secret_value(),
        BOOTSTRAP_KEY,
        tmp_path_factory.mktemp("two-workers") / "casebridge.log",
        workers=2,
        # Background loops and admission control are not under test here: the 20 requests
        # at once must all reach the write path.
        environment={
            "CASEBRIDGE_PULL_RUNNER_ENABLED": "false",
            "CASEBRIDGE_PUSH_DISPATCHER_ENABLED": "false",
            "CASEBRIDGE_MAX_IN_FLIGHT": "0",
            "CASEBRIDGE_RATE_LIMITS_ENABLED": "false",
        },
    ) as base_url:
        yield base_url
    asyncio.run(_delete_every_row(settings))


async def _delete_every_row(settings: Settings) -> None:
    database = Database(settings)
    try:
        async with database.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(delete(table))
    finally:
        await database.dispose()


@pytest.fixture
async def clients(server: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(the internal API with the bootstrap key, /fhir with a real access token)."""
    async with httpx.AsyncClient(
        base_url=server, headers={"X-API-Key": BOOTSTRAP_KEY}, timeout=60.0
    ) as api:
        token = await access_token(api, server)
        async with httpx.AsyncClient(
            base_url=f"{server}/fhir",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
            timeout=60.0,
            limits=httpx.Limits(max_connections=AT_ONCE),
        ) as fhir:
            yield api, fhir


async def at_once(
    fhir: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(fhir.post(path, json=body, headers=headers) for _ in range(AT_ONCE)))
    )


def the_one_created(responses: list[httpx.Response]) -> str:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: AT_ONCE - 1}, [r.text for r in responses]
    ids: set[str] = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    return ids.pop()


async def test_conditional_creates_across_two_workers_make_one_care_plan_and_one_goal(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    api, fhir = clients
    patient = await create_patient(api)
    plan = care_plan(patient["id"]) | {"identifier": [{"system": PLANNER, "value": "plan-1"}]}
    criterion = {"If-None-Exist": f"identifier={PLANNER}|plan-1"}
    case_id = the_one_created(await at_once(fhir, "/CarePlan", plan, criterion))
    cases = ok(await api.get("/api/cases", params={"patient_id": patient["id"]}))["items"]
    assert [c["id"] for c in cases] == [case_id]

    body = goal(patient["id"]) | {"identifier": [{"system": PLANNER, "value": "goal-1"}]}
    criterion = {"If-None-Exist": f"identifier={PLANNER}|goal-1"}
    goal_id = the_one_created(await at_once(fhir, "/Goal", body, criterion))
    goals = ok(await api.get(f"/api/cases/{case_id}/goals"))["items"]
    assert [g["id"] for g in goals] == [goal_id]
    search = ok(await fhir.get("/Goal", params={"identifier": f"{PLANNER}|goal-1"}))
    assert [e["resource"]["id"] for e in search["entry"]] == [goal_id]


async def test_one_idempotency_key_across_two_workers_makes_one_resource(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    api, fhir = clients
    patient = await create_patient(api)
    responses = await at_once(
        fhir, "/CarePlan", care_plan(patient["id"]), {"Idempotency-Key": "plan-once"}
    )
    answers = Counter(answer(r) for r in responses)
    assert len(answers) == 1, answers
    assert responses[0].status_code == 201, responses[0].text
    cases = ok(await api.get("/api/cases", params={"patient_id": patient["id"]}))["items"]
    assert [c["id"] for c in cases] == [responses[0].json()["id"]]

    case = await open_case(api)
    responses = await at_once(fhir, "/Goal", goal(case["patient_id"]), {"Idempotency-Key": "g"})
    assert len({answer(r) for r in responses}) == 1
    goals = ok(await api.get(f"/api/cases/{case['id']}/goals"))["items"]
    assert [g["id"] for g in goals] == [responses[0].json()["id"]]
