"""What the tests put on the EHR: for each patient, a transaction of 29 to 48 resources of every
type a pull reads (vital signs, labs and a procedure among them, which the default pull scope
reads; and an imaging Observation, which it leaves out), with CarePlans that reference their
Goals and CareTeam the way EHRs link them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
PULLED_CATEGORIES = frozenset(
    {"vital-signs", "laboratory", "social-history", "survey", "functional-status"}
)


def _entry(n: int, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _concept(system: str, code: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code}]}
    if text:
        concept["text"] = text
    return concept


def record_transaction(patient_id: str, index: int) -> dict[str, Any]:
    subject = {"reference": f"Patient/{patient_id}"}
    resources: list[dict[str, Any]] = []
    for n, (category, system, text) in enumerate(
        [
            ("problem-list-item", CONDITION_CATEGORY, "Congestive heart failure"),
            ("problem-list-item", CONDITION_CATEGORY, "Type 2 diabetes"),
            ("health-concern", US_CORE_CONDITION_CATEGORY, "Housing instability"),
        ]
    ):
        resources.append(
            {
                "resourceType": "Condition",
                "clinicalStatus": _concept(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
                ),
                "category": [_concept(system, category)],
                "code": {"text": f"{text} ({index}.{n})"},
                "subject": subject,
            }
        )
    for klass in ("IMP", "AMB"):
        resources.append(
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": klass,
                },
                "subject": subject,
            }
        )
    extra = index % 20  # 0..19 more observations: 26 to 45 resources per patient
    pulled_observations = [("social-history", CATEGORY_SYSTEM)] * 2 + [
        ("survey", CATEGORY_SYSTEM),
        ("survey", CATEGORY_SYSTEM),
        ("functional-status", US_CORE_CATEGORY),
        ("functional-status", US_CORE_CATEGORY),
    ]
    pulled_observations += [("survey", CATEGORY_SYSTEM)] * extra
    for n, (category, system) in enumerate(pulled_observations):
        resources.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [_concept(system, category)],
                "code": {"text": f"{category} item {n}"},
                "subject": subject,
                "valueString": f"answer {index}.{n}",
            }
        )
    for n in range(4):
        resources.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [_concept(CATEGORY_SYSTEM, "vital-signs")],
                "code": {"text": f"heart rate {n}"},
                "subject": subject,
                "valueQuantity": {"value": 60 + n, "unit": "/min"},
            }
        )
    for text, value, unit in (("Potassium", "4.1", "mmol/L"), ("Hemoglobin", "13.2", "g/dL")):
        resources.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [_concept(CATEGORY_SYSTEM, "laboratory")],
                "code": {"text": text},
                "subject": subject,
                "effectiveDateTime": "2026-11-20T09:00:00Z",
                "valueQuantity": {"value": Decimal(value), "unit": unit},
            }
        )
    resources.append(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [_concept(CATEGORY_SYSTEM, "imaging")],
            "code": {"text": "Chest X-ray"},
            "subject": subject,
            "valueString": "no acute findings",
        }
    )
    resources.append(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": f"Knee replacement ({index})"},
            "subject": subject,
            "performedDateTime": "2026-10-02",
        }
    )
    for text in ("Penicillin", "Peanuts"):
        resources.append(
            {"resourceType": "AllergyIntolerance", "patient": subject, "code": {"text": text}}
        )
    for text in ("Metformin 500 mg", "Furosemide 40 mg", "Lisinopril 10 mg"):
        resources.append(
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {"text": text},
                "subject": subject,
            }
        )
    entries = [_entry(n, r) for n, r in enumerate(resources)]
    base = len(entries)
    goals = [
        _entry(
            base + n,
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": text},
                "subject": subject,
            },
        )
        for n, text in enumerate(("Walk 10 minutes daily", "Stable housing within 90 days"))
    ]
    team = _entry(
        base + 2,
        {
            "resourceType": "CareTeam",
            "status": "active",
            "name": "Discharge team",
            "subject": subject,
        },
    )
    plan = _entry(
        base + 3,
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "title": f"Discharge plan {index}",
            "subject": subject,
            "goal": [{"reference": goal["fullUrl"]} for goal in goals],
            "careTeam": [{"reference": team["fullUrl"]}],
        },
    )
    referrals = [
        _entry(
            base + 4 + n,
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "code": {"text": text},
                "subject": subject,
                "basedOn": [{"reference": plan["fullUrl"]}],
            },
        )
        for n, text in enumerate(("Home health nursing", "Meals on wheels"))
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [*entries, *goals, team, plan, *referrals],
    }


def is_pulled_observation(resource: dict[str, Any]) -> bool:
    return any(
        coding.get("code") in PULLED_CATEGORIES
        for category in resource.get("category") or []
        for coding in category.get("coding") or []
    )
