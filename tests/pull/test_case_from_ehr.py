"""Opening a case from a pulled record: needs from the open problems and health concerns, and
the EHR's plan, goals, referrals and care team imported through the inverse mappings, each
linked to the remote resource it came from."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import respx
from fastapi import FastAPI
from sqlalchemy import select

from service.db.session import Database
from service.fhir_store.models import StoredResource
from service.links.models import LinkOrigin, PatientLink, ResourceLink
from service.pull.runner import PullRunner
from tests.pull.test_pull_api import MRN, bundle, remote_patient, serve_record

CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def condition(remote_id: str, category: str, text: str, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": remote_id,
        "meta": {"versionId": "3"},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": category}]}],
        "code": {"text": text},
        "subject": {"reference": "Patient/r1"},
    }


def goal(remote_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": remote_id,
        "meta": {"versionId": "5"},
        "lifecycleStatus": status,
        "description": {"text": text},
        "subject": {"reference": "Patient/r1"},
    }


RECORD = {
    "Condition": bundle(
        condition("c1", "problem-list-item", "Heart failure"),
        condition("c2", "health-concern", "Lives alone"),
        condition("c3", "encounter-diagnosis", "Chest pain"),
        condition("c4", "problem-list-item", "Pneumonia", status="resolved"),
    ),
    "CarePlan": bundle(
        {
            "resourceType": "CarePlan",
            "id": "cp1",
            "meta": {"versionId": "7"},
            "status": "active",
            "intent": "plan",
            "title": "Discharge plan",
            "subject": {"reference": "Patient/r1"},
            "goal": [{"reference": "Goal/g1"}, {"reference": "Goal/g2"}],
            "careTeam": [{"reference": "CareTeam/t1"}],
        }
    ),
    "Goal": bundle(goal("g1", "Walk 10 minutes a day", "active"), goal("g2", "Old", "completed")),
    "ServiceRequest": bundle(
        {
            "resourceType": "ServiceRequest",
            "id": "s1",
            "meta": {"versionId": "2"},
            "status": "active",
            "intent": "order",
            "code": {"text": "Home health nursing"},
            "subject": {"reference": "Patient/r1"},
            "basedOn": [{"reference": "CarePlan/cp1"}],
        }
    ),
    "CareTeam": bundle(
        {
            "resourceType": "CareTeam",
            "id": "t1",
            "meta": {"versionId": "1"},
            "status": "active",
            "subject": {"reference": "Patient/r1"},
            "participant": [{"member": {"display": "Nurse Joy"}}],
        },
        {
            "resourceType": "CareTeam",
            "id": "t2",
            "meta": {"versionId": "1"},
            "status": "active",
            "subject": {"reference": "Patient/r1"},
        },
    ),
}


async def test_a_case_opens_at_intake_from_the_pulled_record(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    serve_record(ehr, remote_patient(MRN, name=[{"family": "Doe"}]), **RECORD)
    started = await client.post(
        f"/api/connections/{connection_id}/pulls", json={"patients": [{"remote_id": "r1"}]}
    )
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), 30)
    assert (await client.get(f"/api/pulls/{started.json()['id']}")).json()["state"] == "succeeded"
    async with database.transaction(write=False) as session:
        [patient_id] = await session.scalars(select(PatientLink.patient_id))

    response = await client.post(f"/api/connections/{connection_id}/patients/{patient_id}/cases")
    assert response.status_code == 201, response.text
    opened = response.json()
    case_id = opened["case_id"]
    assert response.headers["Location"] == f"/api/cases/{case_id}"
    assert sorted((i["resource_type"], i["remote_id"]) for i in opened["imported"]) == [
        ("CarePlan", "cp1"),
        ("CareTeam", "t1"),
        ("Condition", "c1"),
        ("Condition", "c2"),
        ("Goal", "g1"),
        ("ServiceRequest", "s1"),
    ]
    assert opened["skipped"] == [
        {"resource_type": "CareTeam", "remote_id": "t2", "reason": "a case has one CareTeam"}
    ]

    case = (await client.get(f"/api/cases/{case_id}")).json()
    assert case["status"] == "intake"
    assert case["patient_id"] == patient_id
    needs = (await client.get(f"/api/cases/{case_id}/needs")).json()["items"]
    assert sorted(n["description"] for n in needs) == ["Heart failure", "Lives alone"]
    goals = (await client.get(f"/api/cases/{case_id}/goals")).json()["items"]
    assert [g["description"] for g in goals] == ["Walk 10 minutes a day"]
    interventions = (await client.get(f"/api/cases/{case_id}/interventions")).json()["items"]
    assert len(interventions) == 1
    # Each imported resource remembers its source: the remote id and version it came from.
    async with database.transaction(write=False) as session:
        links = {
            (link.resource_type, link.remote_id): link
            for link in await session.scalars(
                select(ResourceLink).where(ResourceLink.connection_id == connection_id)
            )
        }
        rows = await session.execute(select(StoredResource.resource_type, StoredResource.id))
        stored = {(kind, local_id) for kind, local_id in rows.all()}
    assert {(k, link.remote_version_id, link.origin) for (k, _), link in links.items()} >= {
        ("CarePlan", "7", LinkOrigin.pulled),
        ("Goal", "5", LinkOrigin.pulled),
        ("Condition", "3", LinkOrigin.pulled),
    }
    assert links[("CarePlan", "cp1")].local_id == case_id
    # The plan refers to its local goal only: no reference to the EHR's ids is left behind.
    async with database.transaction(write=False) as session:
        plan = await session.get(StoredResource, ("CarePlan", case_id))
        assert plan is not None
        content = plan.content.decode()
    assert f"Goal/{links[('Goal', 'g1')].local_id}" in content
    assert "g1" not in content.replace(links[("Goal", "g1")].local_id, "")
    assert "Goal/g2" not in content
    for (kind, _), link in links.items():
        assert (kind, link.local_id) in stored, (kind, link.local_id)

    # The EHR's resources now have their local copies: a second case from them is refused.
    again = await client.post(f"/api/connections/{connection_id}/patients/{patient_id}/cases")
    assert again.status_code == 409
    assert again.json()["rule"] == "case.from_ehr.linked"


async def test_a_case_needs_a_pull_first(client: httpx.AsyncClient, connection_id: str) -> None:
    patient = (await client.post("/api/patients", json={"family_name": "Never Pulled"})).json()
    response = await client.post(f"/api/connections/{connection_id}/patients/{patient['id']}/cases")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["rule"] == "case.from_ehr.pulled"
    missing = await client.post(f"/api/connections/{connection_id}/patients/nobody/cases")
    assert missing.status_code == 404
