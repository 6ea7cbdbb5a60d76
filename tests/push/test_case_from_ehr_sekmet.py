"""A case opened from what sekmet holds for a patient (pulled over SMART Backend Services),
then pushed back: the program and need domains are chosen or fixed, an SDOH concern lands in
its SDOH domain, the case's needs stay linked to the EHR's Conditions (never duplicated), and
closing the case closes its goals and referrals on the EHR too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from service.db.session import Database
from service.links.models import PatientLink
from service.pull.runner import PullRunner
from service.push.dispatcher import PushDispatcher
from service.settings import Settings
from tests.api.case_factory import ok, patch_case
from tests.conftest import settings_for
from tests.push.conftest import TRANSACTION_SCOPE, WRITE_SCOPES, Ehr, register_ehr
from tests.smart.sekmet_server import SekmetServer

pytestmark = pytest.mark.integration

CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
SNOMED = "http://snomed.info/sct"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        push_dispatcher_enabled=False,
        allow_insecure_http=True,
        allow_private_networks=True,
        pull_poll_seconds=0.2,
        push_retry_base_seconds=0.01,
        push_retry_max_seconds=0.05,
    )


@pytest.fixture
async def ehr(
    client: httpx.AsyncClient, database: Database, writable_sekmet: SekmetServer
) -> AsyncIterator[Ehr]:
    registered = await register_ehr(
        client, database, writable_sekmet, f"{WRITE_SCOPES} {TRANSACTION_SCOPE}"
    )
    yield registered
    await registered.fhir.aclose()


def sdoh_concern(remote_patient: str) -> dict[str, Any]:
    """A health concern tagged SDOH the way US Core's example is: the us-core `sdoh` category
    and a SNOMED finding, no SDOHCC category code."""
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "category": [
            {"coding": [{"system": CONDITION_CATEGORY, "code": "health-concern"}]},
            {"coding": [{"system": US_CORE_CATEGORY, "code": "sdoh"}]},
        ],
        "code": {
            "coding": [{"system": SNOMED, "code": "1156191002", "display": "Housing instability"}],
            "text": "Housing instability",
        },
        "subject": {"reference": f"Patient/{remote_patient}"},
    }


async def created(ehr: Ehr, resource: dict[str, Any]) -> str:
    result = await ehr.fhir.create(resource)
    assert result.resource is not None
    return str(result.resource["id"])


async def conditions_of(ehr: Ehr, remote_patient: str) -> list[dict[str, Any]]:
    return [r async for r in ehr.fhir.search("Condition", [("subject", remote_patient)])]


async def pull_and_open(
    app: FastAPI, client: httpx.AsyncClient, database: Database, ehr: Ehr, remote: str, **body: Any
) -> dict[str, Any]:
    started = ok(
        await client.post(
            f"/api/connections/{ehr.connection_id}/pulls",
            json={"patients": [{"remote_id": remote}]},
        ),
        202,
    )
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), 60)
    job = ok(await client.get(f"/api/pulls/{started['id']}"))
    assert job["state"] == "succeeded", job
    async with database.transaction(write=False) as session:
        patient_id = await session.scalar(
            select(PatientLink.patient_id).where(PatientLink.remote_id == remote)
        )
    opened: dict[str, Any] = ok(
        await client.post(
            f"/api/connections/{ehr.connection_id}/patients/{patient_id}/cases", json=body or None
        ),
        201,
    )
    return opened


async def test_an_sdoh_concern_is_a_housing_need_linked_to_the_ehrs_condition(
    app: FastAPI, client: httpx.AsyncClient, database: Database, ehr: Ehr
) -> None:
    remote = await created(ehr, {"resourceType": "Patient", "name": [{"family": "Sdoh"}]})
    condition_id = await created(ehr, sdoh_concern(remote))
    opened = await pull_and_open(app, client, database, ehr, remote, program="social_work")
    case_id = opened["case_id"]
    case = ok(await client.get(f"/api/cases/{case_id}"))
    assert case["program"] == "social_work"
    [need] = ok(await client.get(f"/api/cases/{case_id}/needs"))["items"]
    assert need["description"] == "Housing instability"
    assert need["domain"] == "housing"
    before = await conditions_of(ehr, remote)
    assert [c["id"] for c in before] == [condition_id]

    dispatcher = PushDispatcher(database)
    try:
        # The planner refines the need; the push updates the EHR's Condition, creates none.
        ok(
            await client.patch(
                f"/api/cases/{case_id}/needs/{need['id']}",
                json={"severity": "severe"},
                headers={"If-Match": f'W/"{need["version"]}"'},
            )
        )
        await dispatcher.run_until_idle()
    finally:
        await dispatcher.close()
    [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
    assert status["status"] == "synced", status
    after = await conditions_of(ehr, remote)
    assert [c["id"] for c in after] == [condition_id]
    assert int(after[0]["meta"]["versionId"]) > int(before[0]["meta"]["versionId"])


async def test_closing_the_case_closes_its_goal_and_referral_on_the_ehr(
    app: FastAPI, client: httpx.AsyncClient, database: Database, ehr: Ehr
) -> None:
    remote = await created(ehr, {"resourceType": "Patient", "name": [{"family": "Closing"}]})
    await created(ehr, sdoh_concern(remote))
    referral_id = await created(
        ehr,
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {"text": "Housing navigation"},
            "subject": {"reference": f"Patient/{remote}"},
        },
    )
    opened = await pull_and_open(app, client, database, ehr, remote, program="social_work")
    case_id = opened["case_id"]
    base = f"/api/cases/{case_id}"
    [need] = ok(await client.get(f"{base}/needs"))["items"]
    case = ok(await client.get(base))
    for status in ("assessment", "planning", "active"):
        case = ok(await patch_case(client, case, status=status))
    goal = ok(
        await client.post(
            f"{base}/goals",
            json={
                "description": "Stable housing",
                "need_ids": [need["id"]],
                "lifecycle_status": "active",
            },
        ),
        201,
    )
    case = ok(await client.get(base))
    closing = {"status": "closed", "closure_reason": "patient_declined"}
    refused = ok(await patch_case(client, case, **closing), 409)
    assert {i["resource_type"] for i in refused["open_items"]} == {"Goal", "ServiceRequest"}

    dispatcher = PushDispatcher(database)
    try:
        await dispatcher.run_until_idle()
        ok(await patch_case(client, case, **closing, open_items="cancel"))
        await dispatcher.run_until_idle()
    finally:
        await dispatcher.close()
    [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
    assert status["status"] == "synced", status
    referral = await ehr.fhir.read("ServiceRequest", referral_id)
    assert referral["status"] == "revoked"
    plans = [r async for r in ehr.fhir.search("CarePlan", [("subject", remote)])]
    assert [p["status"] for p in plans] == ["completed"]
    assert ok(await client.get(f"{base}/goals/{goal['id']}"))["lifecycle_status"] == "cancelled"
