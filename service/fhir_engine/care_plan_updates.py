"""`PUT /fhir/CarePlan/{id}`: the case-level parts of a received CarePlan update the case.

A CarePlan is the case's face: its title, author (the case manager), status and priority
update the case through the same rules as `/api` (the lifecycle holds; closing needs a reason).
Elements that other records own (goals, activities, concerns, team, notes, assessments,
program, dates) must come back as they were read: they change through their own resources or
the case API, and a change sent here is refused with a 422 naming the element, never ignored.
Content the case has no place for is kept for the round trip.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mappings import fhir_json
from mappings.canonical import EXT_ASSESSMENT, EXT_CASE_STATUS
from mappings.from_fhir import import_care_plan
from mappings.vocabulary import CaseStatus
from service.auth.deps import Actor
from service.cases.models import Case
from service.cases.records import case_update
from service.cases.service import update_case
from service.db.unit_of_work import UnitOfWork
from service.fhir_engine.transactions import FhirRejected
from service.fhir_store.models import StoredResource

# Element -> where it changes instead.
OWNED_ELSEWHERE = {
    "goal": "POST or DELETE a Goal",
    "activity": "POST a ServiceRequest, or record check-ins and transitions through /api",
    "addresses": "the case's assessments (its needs become Conditions)",
    "careTeam": "the case's care team",
    "category": "the case's program, through PATCH /api/cases/{id}",
    "period": "the case's lifecycle (opened and closed dates)",
    "created": "the case's lifecycle",
    "note": "the case's notes, through /api",
    "supportingInfo": "the records it points to",
}
OWNED_EXTENSIONS = {EXT_ASSESSMENT: "the case's assessments, through /api"}


def _extensions(resource: dict[str, Any], url: str) -> list[Any]:
    return [e for e in resource.get("extension") or [] if e.get("url") == url]


def check_owned_elements_unchanged(received: dict[str, Any], stored: dict[str, Any]) -> None:
    for element, where in OWNED_ELSEWHERE.items():
        if received.get(element) != stored.get(element):
            raise FhirRejected(
                f"CarePlan.{element} is not changed by a CarePlan update; use {where}",
                extra={"expression": [f"CarePlan.{element}"]},
            )
    for url, where in OWNED_EXTENSIONS.items():
        if _extensions(received, url) != _extensions(stored, url):
            raise FhirRejected(
                f"the extension {url} is not changed by a CarePlan update; use {where}",
                extra={"expression": [f"CarePlan.extension('{url}')"]},
            )


def _without(resource: dict[str, Any], *urls: str) -> dict[str, Any]:
    kept = [e for e in resource.get("extension") or [] if e.get("url") not in urls]
    return (
        {**resource, "extension": kept}
        if kept
        else {k: v for k, v in resource.items() if k != "extension"}
    )


async def update_care_plan(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    resource: dict[str, Any],
    stored_row: StoredResource,
) -> None:
    stored = fhir_json.loads(stored_row.content)
    check_owned_elements_unchanged(resource, stored)
    if resource.get("status") != stored.get("status"):
        # The FHIR status changed: it decides, not the finer case status it was projected with.
        resource = _without(resource, EXT_CASE_STATUS)
    record = import_care_plan(resource, dt.datetime.now(dt.UTC))
    closing = record.status is CaseStatus.closed and case.status is not CaseStatus.closed
    await update_case(session, actor, case, case_update(record, closing=closing), None)
    extras = dict(case.fhir_extras or {})
    if kept := record.fhir_extras.get("CarePlan"):
        extras["CarePlan"] = kept
    else:
        extras.pop("CarePlan", None)
    case.fhir_extras = extras
