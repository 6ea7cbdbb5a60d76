"""Pulled changes reach open cases, against sekmet-fhir on loopback: a case is pushed, the EHR's
copy is edited there directly (as the receiving side or a clinician would), then the scheduled
refresh pulls it, and the case takes the EHR's change through the domain rules, or a review item
says what it could not take."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from mappings.canonical import EXT_REFERRAL_OUTCOME, REFERRAL_OUTCOME_SYSTEM
from service.cases.models import CaseEvent
from service.db.session import Database
from service.fhir_store.models import ResourceVersion, StoredResource
from service.pull import into_cases
from service.pull.models import PullJob
from service.pull.runner import REFRESH_ACTOR, PullRunner
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok, patch_case
from tests.push.conftest import Ehr
from tests.push.linked_cases import linked_case

pytestmark = pytest.mark.integration


async def refresh(app: FastAPI, database: Database) -> PullJob:
    """Run the scheduled refresh now, to its end; its job."""
    runner: PullRunner = app.state.pull_runner
    assert await runner.schedule_refresh() == 1
    await asyncio.wait_for(runner.wait_idle(), 120)
    async with database.transaction(write=False) as session:
        jobs = list(
            await session.scalars(
                select(PullJob)
                .where(PullJob.requested_by == REFRESH_ACTOR)
                .order_by(PullJob.created_at.desc())
            )
        )
    return jobs[0]


async def pushed_case(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> tuple[dict[str, Any], str]:
    case, remote_patient = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "synced", status
    return case, remote_patient


async def remote_referral(ehr: Ehr, remote_patient: str) -> dict[str, Any]:
    [referral] = [r async for r in ehr.fhir.search("ServiceRequest", [("subject", remote_patient)])]
    return referral


async def remote_plan(ehr: Ehr, remote_patient: str) -> dict[str, Any]:
    [plan] = [r async for r in ehr.fhir.search("CarePlan", [("subject", remote_patient)])]
    return plan


async def referral_of(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    [referral] = ok(await client.get(f"/api/cases/{case_id}/interventions"))["items"]
    return dict(referral)


async def review_items(client: httpx.AsyncClient, case_id: str) -> list[dict[str, Any]]:
    return list(ok(await client.get("/api/review-items", params={"case_id": case_id}))["items"])


def without(resource: dict[str, Any], *elements: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in elements}


async def versions_and_events(database: Database, case_id: str) -> tuple[int, int]:
    async with database.transaction(write=False) as session:
        versions = await session.scalar(
            select(func.count())
            .select_from(ResourceVersion)
            .join(
                StoredResource,
                (StoredResource.resource_type == ResourceVersion.resource_type)
                & (StoredResource.id == ResourceVersion.id),
            )
            .where(StoredResource.case_id == case_id)
        )
        events = await session.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id)
        )
    return int(versions or 0), int(events or 0)


async def test_a_referral_completed_on_the_ehr_completes_the_cases_referral(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    dispatcher: PushDispatcher,
) -> None:
    case, remote_patient = await pushed_case(client, database, ehr, dispatcher)
    referral = await remote_referral(ehr, remote_patient)
    await ehr.fhir.update(referral | {"status": "completed"})

    await refresh(app, database)

    mine = await referral_of(client, case["id"])
    assert mine["status"] == "completed"
    # Nothing was sent back as the outcome: the case records that, and asks a planner for it.
    assert mine["referral_outcome"] == "not_reported"
    [item] = await review_items(client, case["id"])
    assert item["source"] == "pull"
    assert item["resource_type"] == "ServiceRequest"
    assert item["local_id"] == mine["id"]
    assert item["remote_reference"] == f"ServiceRequest/{referral['id']}"
    assert "outcome" in item["reason"]
    history = ok(await client.get(f"/api/cases/{case['id']}/history"))
    completion = [
        e for e in history if e["entity"] == "intervention" and "status" in (e["changes"] or {})
    ]
    assert completion[-1]["actor"] == f"ehr:{ehr.connection_id}"  # the EHR's fact, named

    # The case changed, so it is pushed again; the EHR keeps its completion.
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "pending"
    await dispatcher.run_until_idle()
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "synced", status
    assert (await remote_referral(ehr, remote_patient))["status"] == "completed"

    # Pulling it all again changes nothing, and opens no second item.
    before = await versions_and_events(database, case["id"])
    await refresh(app, database)
    assert await versions_and_events(database, case["id"]) == before
    assert len(await review_items(client, case["id"])) == 1


async def test_an_outcome_the_ehr_reports_is_the_cases_outcome(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    dispatcher: PushDispatcher,
) -> None:
    case, remote_patient = await pushed_case(client, database, ehr, dispatcher)
    referral = await remote_referral(ehr, remote_patient)
    outcome = {
        "url": EXT_REFERRAL_OUTCOME,
        "valueCodeableConcept": {
            "coding": [{"system": REFERRAL_OUTCOME_SYSTEM, "code": "service_provided"}]
        },
    }
    await ehr.fhir.update(referral | {"status": "completed", "extension": [outcome]})

    await refresh(app, database)

    mine = await referral_of(client, case["id"])
    assert (mine["status"], mine["referral_outcome"]) == ("completed", "service_provided")
    assert await review_items(client, case["id"]) == []


@pytest.mark.parametrize(
    ("ehr_status", "case_status"),
    [("revoked", "revoked"), ("entered-in-error", "entered_in_error")],
)
async def test_a_referral_the_ehr_withdrew_is_withdrawn_in_the_case(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    dispatcher: PushDispatcher,
    ehr_status: str,
    case_status: str,
) -> None:
    case, remote_patient = await pushed_case(client, database, ehr, dispatcher)
    referral = await remote_referral(ehr, remote_patient)
    await ehr.fhir.update(referral | {"status": ehr_status})

    await refresh(app, database)

    mine = await referral_of(client, case["id"])
    assert mine["status"] == case_status
    assert mine["referral_outcome"] is None
    assert await review_items(client, case["id"]) == []


async def test_an_ehr_edit_of_the_plan_reaches_the_open_case(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    dispatcher: PushDispatcher,
) -> None:
    case, remote_patient = await pushed_case(client, database, ehr, dispatcher)
    # A refresh of what the case pushed itself changes nothing.
    before = await versions_and_events(database, case["id"])
    await refresh(app, database)
    assert await versions_and_events(database, case["id"]) == before

    plan = await remote_plan(ehr, remote_patient)
    await ehr.fhir.update(plan | {"title": "Home with day care"})

    await refresh(app, database)

    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Home with day care"
    assert await review_items(client, case["id"]) == []
    # It came from the EHR: the push sends nothing of it back but the narrative, which is
    # generated from the case's content and still named the old title.
    edited = await remote_plan(ehr, remote_patient)
    await dispatcher.run_until_idle()
    after_push = await remote_plan(ehr, remote_patient)
    assert without(after_push, "meta", "text") == without(edited, "meta", "text")
    assert "Home with day care" in after_push["text"]["div"]
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "synced", status

    # The same data pulled again: no new version, no new history.
    taken = await versions_and_events(database, case["id"])
    assert taken != before
    await refresh(app, database)
    assert await versions_and_events(database, case["id"]) == taken


async def test_an_element_the_case_changed_too_becomes_a_review_item(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    dispatcher: PushDispatcher,
) -> None:
    case, remote_patient = await pushed_case(client, database, ehr, dispatcher)
    plan = await remote_plan(ehr, remote_patient)
    await ehr.fhir.update(
        plan | {"title": "Title from the EHR", "description": "Described in the EHR"}
    )
    ok(await patch_case(client, case, title="Title from the case manager"))

    await refresh(app, database)

    # The case keeps its title; the EHR's other edit, which the case did not touch, is taken.
    current = ok(await client.get(f"/api/cases/{case['id']}"))
    assert current["title"] == "Title from the case manager"
    [item] = await review_items(client, case["id"])
    assert item["elements"] == ["title"]
    assert item["ehr_value"] == {"title": "Title from the EHR"}
    assert item["case_value"] == {"title": "Title from the case manager"}
    assert item["source"] == "pull"
    assert "keeps its value" in item["reason"]
    async with database.transaction(write=False) as session:
        stored = await session.get(StoredResource, ("CarePlan", case["id"]))
    assert stored is not None
    assert orjson.loads(stored.content)["description"] == "Described in the EHR"

    # Pulled again: the same single item, nothing more in the case.
    before = await versions_and_events(database, case["id"])
    await refresh(app, database)
    assert await versions_and_events(database, case["id"]) == before
    assert len(await review_items(client, case["id"])) == 1


async def test_what_the_case_cannot_take_is_reviewed_and_the_rest_is_taken(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    dispatcher: PushDispatcher,
) -> None:
    case, remote_patient = await pushed_case(client, database, ehr, dispatcher)
    created = await ehr.fhir.create(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{remote_patient}"},
            "code": {"text": "Recorded by the EHR only"},
        }
    )
    assert created.resource is not None
    theirs = {"reference": f"Condition/{created.resource['id']}"}
    plan = await remote_plan(ehr, remote_patient)
    await ehr.fhir.update(
        plan | {"title": "Home with day care", "addresses": [*plan["addresses"], theirs]}
    )

    await refresh(app, database)

    # The title is taken; the reference to a Condition the case does not hold is not, and a
    # person sees why.
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Home with day care"
    [item] = await review_items(client, case["id"])
    assert item["elements"] == ["addresses"]
    assert theirs in item["ehr_value"]["addresses"]
    assert "no copy in the case" in item["reason"]


async def test_a_change_that_could_not_reach_its_case_is_reported_and_taken_next_time(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    dispatcher: PushDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case, remote_patient = await pushed_case(client, database, ehr, dispatcher)
    plan = await remote_plan(ehr, remote_patient)
    await ehr.fhir.update(plan | {"title": "Home with day care"})

    async def broken(*_args: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(into_cases, "_apply", broken)
    job = await refresh(app, database)
    [failure] = [f for f in job.failures if f["resource_type"] == "CarePlan"]
    assert failure["remote_id"] == plan["id"]
    assert "could not reach the case" in failure["reason"]
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Home after hip fracture"

    monkeypatch.undo()
    await refresh(app, database)  # the CarePlans are read in full again, not from the cursor
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Home with day care"
