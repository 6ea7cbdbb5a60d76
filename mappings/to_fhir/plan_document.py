"""A CarePlan as a DocumentReference carrying the rendered plan: what is pushed instead to an
EHR that cannot write CarePlan (Epic and Oracle Health expose CarePlan read-only) but accepts
documents. The attachment is the CarePlan's generated narrative (XHTML), so a clinician reading
the chart sees the same plan the case manager sees. LOINC 18776-5 "Plan of care note"."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from mappings.canonical import CASEBRIDGE_BASE, LOINC
from mappings.fhir_datatypes import JsonDict, compact

PLAN_DOCUMENT_SYSTEM = f"{CASEBRIDGE_BASE}/sid/care-plan-document"


def plan_document_id(care_plan_id: str) -> str:
    return f"plan-{care_plan_id}"


def plan_document(care_plan: Mapping[str, Any]) -> JsonDict:
    """The DocumentReference of a projected CarePlan (as stored, with meta.lastUpdated)."""
    div = str((care_plan.get("text") or {}).get("div") or "")
    title = care_plan.get("title") or "Case management plan"
    return compact(
        resourceType="DocumentReference",
        id=plan_document_id(str(care_plan["id"])),
        identifier=[{"system": PLAN_DOCUMENT_SYSTEM, "value": str(care_plan["id"])}],
        status="current",
        type={
            "coding": [{"system": LOINC, "code": "18776-5", "display": "Plan of care note"}],
            "text": "Plan of care",
        },
        subject=care_plan.get("subject"),
        date=(care_plan.get("meta") or {}).get("lastUpdated"),
        description=title,
        content=[
            {
                "attachment": {
                    "contentType": "text/html; charset=utf-8",
                    "data": base64.b64encode(div.encode()).decode(),
                    "title": title,
                }
            }
        ],
    )
