"""The planner's view of a pulled record: problems, medications, allergies, recent encounters,
vital signs and labs, each with its source and date, read from what the EHR sent."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import respx
from fastapi import FastAPI
from sqlalchemy import select

from service.db.session import Database
from service.links.models import PatientLink
from service.pull.runner import PullRunner
from tests.pull.test_pull_api import MRN, bundle, remote_patient, serve_record

LOINC = "http://loinc.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def observation(
    remote_id: str, code: str, text: str, category: str, at: str, **value: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": remote_id,
        "meta": {"lastUpdated": "2026-11-30T10:00:00Z"},
        "status": value.pop("status", "final"),
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}], "text": text},
        "subject": {"reference": "Patient/r1"},
        "effectiveDateTime": at,
        **value,
    }


def encounter(remote_id: str, start: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": remote_id,
        "status": "finished",
        "class": {"code": "AMB", "display": "ambulatory"},
        "type": [{"text": f"Visit {remote_id}"}],
        "subject": {"reference": "Patient/r1"},
        "period": {"start": start},
    }


RECORD: dict[str, Any] = {
    "Condition": bundle(
        {
            "resourceType": "Condition",
            "id": "c1",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "category": [{"coding": [{"code": "problem-list-item"}]}],
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "84114007"}],
                "text": "Heart failure",
            },
            "subject": {"reference": "Patient/r1"},
            "onsetDateTime": "2019-04",
        },
        {
            "resourceType": "Condition",
            "id": "c2",
            "verificationStatus": {
                "coding": [{"system": VERIFICATION, "code": "entered-in-error"}]
            },
            "code": {"text": "Wrong patient's diabetes"},
            "subject": {"reference": "Patient/r1"},
        },
    ),
    "MedicationRequest": bundle(
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Furosemide 40 mg tablet"},
            "subject": {"reference": "Patient/r1"},
            "authoredOn": "2026-11-02",
            "dosageInstruction": [{"text": "1 tablet by mouth every morning"}],
        }
    ),
    "AllergyIntolerance": bundle(
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"text": "Penicillin"},
            "patient": {"reference": "Patient/r1"},
            "criticality": "high",
            "reaction": [{"manifestation": [{"text": "Hives"}]}],
            "recordedDate": "2010-06-01",
        }
    ),
    "Encounter": bundle(
        *(encounter(f"e{n:02d}", f"2026-{n:02d}-15T09:00:00-05:00") for n in range(1, 13))
    ),
    "Observation": bundle(
        observation(
            "hr-old",
            "8867-4",
            "Heart rate",
            "vital-signs",
            "2026-11-01T08:00:00Z",
            valueQuantity={"value": 88, "unit": "/min"},
        ),
        observation(
            "hr-new",
            "8867-4",
            "Heart rate",
            "vital-signs",
            "2026-11-29T08:00:00+01:00",
            valueQuantity={"value": 72, "unit": "/min"},
        ),
        observation(
            "bp",
            "85354-9",
            "Blood pressure",
            "vital-signs",
            "2026-11-29T08:00:00Z",
            component=[
                {"code": {"text": "Systolic"}, "valueQuantity": {"value": 128, "unit": "mm[Hg]"}},
                {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 82, "unit": "mm[Hg]"}},
            ],
        ),
        observation(
            "cr",
            "2160-0",
            "Creatinine",
            "laboratory",
            "2026-11-28",
            valueQuantity={"value": 1.4, "unit": "mg/dL"},
        ),
        observation(
            "k-err",
            "2823-3",
            "Potassium",
            "laboratory",
            "2026-11-28",
            valueQuantity={"value": 9.9, "unit": "mmol/L"},
            status="entered-in-error",
        ),
        observation(
            "smoke",
            "72166-2",
            "Tobacco use",
            "social-history",
            "2026-11-28",
            valueCodeableConcept={"text": "Never smoker"},
        ),
    ),
}


async def test_the_summary_shows_what_the_ehr_holds_with_source_and_date(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    serve_record(ehr, remote_patient(MRN), **RECORD)
    started = await client.post(
        f"/api/connections/{connection_id}/pulls", json={"patients": [{"remote_id": "r1"}]}
    )
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), 30)
    assert (await client.get(f"/api/pulls/{started.json()['id']}")).json()["state"] == "succeeded"
    async with database.transaction(write=False) as session:
        [patient_id] = await session.scalars(select(PatientLink.patient_id))

    response = await client.get(f"/api/patients/{patient_id}/summary")
    assert response.status_code == 200, response.text
    summary = response.json()
    [problem] = summary["problems"]  # the entered-in-error Condition is left out
    assert (problem["text"], problem["date"], problem["status"]) == (
        "Heart failure",
        "2019-04",
        "active",
    )
    assert problem["code"] == "http://snomed.info/sct|84114007"
    assert problem["source"] == {
        "connection_id": connection_id,
        "connection_name": "ehr",
        "resource": "Condition/c1",
        "last_updated": None,
    }
    [medication] = summary["medications"]
    assert (medication["text"], medication["value"], medication["date"]) == (
        "Furosemide 40 mg tablet",
        "1 tablet by mouth every morning",
        "2026-11-02",
    )
    [allergy] = summary["allergies"]
    assert (allergy["text"], allergy["value"], allergy["category"]) == (
        "Penicillin",
        "Hives",
        "high",
    )
    encounters = [e["source"]["resource"] for e in summary["encounters"]]
    assert encounters == [f"Encounter/e{n:02d}" for n in range(12, 2, -1)]  # 10, newest first
    vitals = {v["text"]: v for v in summary["vital_signs"]}
    assert sorted(vitals) == ["Blood pressure", "Heart rate"]
    assert vitals["Heart rate"]["value"] == "72 /min"  # the latest of the two
    assert vitals["Heart rate"]["date"] == "2026-11-29T08:00:00+01:00"
    assert vitals["Blood pressure"]["value"] == "Systolic: 128 mm[Hg]; Diastolic: 82 mm[Hg]"
    [creatinine] = summary["labs"]  # the entered-in-error potassium is left out
    assert (creatinine["text"], creatinine["value"]) == ("Creatinine", "1.4 mg/dL")


async def test_the_summary_of_an_unknown_patient_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/patients/nobody/summary")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_summary_of_a_patient_never_pulled_is_empty(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/patients",
        json={"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1948-12-10"},
    )
    assert created.status_code == 201, created.text
    summary = (await client.get(f"/api/patients/{created.json()['id']}/summary")).json()
    assert all(summary[k] == [] for k in ("problems", "medications", "allergies", "labs"))
