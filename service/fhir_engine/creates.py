"""`POST /fhir/{type}`: create, and conditional create with `If-None-Exist`.

What a lone resource means for a case:

- a **CarePlan** opens a new case (the same mapping as a one-entry transaction);
- a **Patient** is a new local patient (`patient_writes`);
- a **ServiceRequest**, **Goal**, **Condition** or **CareTeam** joins a case, or opens one in
  `referral` status (`intake` says which): a ServiceRequest is a referral intake.

Provenance, Practitioner and Organization are the service's own records (`read_only`);
creating one is refused with a 422 that says so. The server assigns ids; a client's `id` is
ignored, as FHIR requires of create.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from mappings.from_fhir import ResourceRejected, import_goal, import_service_request
from mappings.to_fhir.context import CaseContext, care_team_id
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.models import Case
from service.db.base import new_id
from service.db.record_fields import assign_fields
from service.db.unit_of_work import UnitOfWork
from service.errors import BadRequest, PreconditionFailed, UnprocessableEntity
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_engine.conditionals import identifier_criterion, ids_with_identifier
from service.fhir_engine.intake import JOINABLE, case_for
from service.fhir_engine.need_and_team_writes import add_condition, set_care_team
from service.fhir_engine.own_identifiers import refuse_foreign_own_identifiers
from service.fhir_engine.patient_writes import create_patient_resource
from service.fhir_engine.read_only import refuse_create
from service.fhir_engine.responses import json_body
from service.fhir_engine.transactions import FhirRejected, create_case
from service.fhir_store.locks import lock_conditional_create
from service.fhir_store.models import StoredResource
from service.fhir_store.repository import current
from service.plans.records import (
    GOAL_RECEIVED,
    INTERVENTION_RECEIVED,
    goal_create,
    intervention_create,
)
from service.plans.service import add_goal, add_intervention

CREATABLE = frozenset({"CarePlan", "Patient", *JOINABLE})


@dataclass(frozen=True)
class Created:
    row: StoredResource
    created: bool  # False: a conditional create found the resource already there


async def create_resource(
    session: UnitOfWork,
    principal: FhirPrincipal,
    resource_type: str,
    body: bytes,
    if_none_exist: str | None,
) -> Created:
    if resource_type not in CREATABLE:
        refuse_create(resource_type)
        raise UnprocessableEntity(
            f"a {resource_type} is not created on its own here; send it with its case as "
            "a transaction Bundle",
            extra={"expression": [resource_type]},
        )
    resource = json_body(body)
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise BadRequest(
            f"the body must be a {resource_type}", extra={"expression": ["resourceType"]}
        )
    patient_id = None if resource_type == "Patient" else _subject(resource, resource_type)
    principal.require(resource_type, Interaction.create, patient_id=patient_id)
    if if_none_exist is not None:
        system, value = identifier_criterion(parse_qsl(if_none_exist), "If-None-Exist")
        await lock_conditional_create(session, resource_type, system, value)
        matches = await ids_with_identifier(session, resource_type, system, value)
        if len(matches) > 1:
            raise PreconditionFailed(
                f"{len(matches)} {resource_type} resources match If-None-Exist; at most one may"
            )
        if matches:
            existing = await current(session, resource_type, matches[0])
            principal.require(resource_type, Interaction.read, patient_id=existing.patient_id)
            return Created(existing, created=False)
    refuse_foreign_own_identifiers(resource, None, resource_type)
    resource = {**resource, "id": new_id()}
    actor = Actor(f"client:{principal.subject}", Role.case_manager)
    if resource_type == "CarePlan":
        resource_id = await create_case(session, principal, resource)
    elif resource_type == "Patient":
        resource_id = await create_patient_resource(session, actor, resource)
    else:
        assert patient_id is not None
        resource_id = await _add_to_case(session, actor, resource_type, resource, patient_id)
    await session.project()  # now, so the response carries the stored version
    return Created(await current(session, resource_type, resource_id), created=True)


def _subject(resource: dict[str, Any], resource_type: str) -> str:
    reference = (resource.get("subject") or {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise FhirRejected(
            f"a {resource_type} must have a subject Patient/<id>",
            extra={"expression": [f"{resource_type}.subject"]},
        )
    return reference.removeprefix("Patient/")


async def _add_to_case(
    session: UnitOfWork,
    actor: Actor,
    resource_type: str,
    resource: dict[str, Any],
    patient_id: str,
) -> str:
    """The record the resource is, added to the case `intake.case_for` finds or opens."""
    try:
        if resource_type == "Goal":
            case = await case_for(session, actor, resource_type, resource, patient_id)
            goal_record = import_goal(resource, _context(case)).record
            goal = await add_goal(session, actor, case, goal_create(goal_record))
            assign_fields(goal, goal_record, GOAL_RECEIVED)
            return goal.id
        if resource_type == "Condition":
            case = await case_for(session, actor, resource_type, resource, patient_id)
            return await add_condition(session, actor, case, resource)
        if resource_type == "CareTeam":
            case = await case_for(session, actor, resource_type, resource, patient_id)
            await set_care_team(session, actor, case, resource, creating=True)
            return care_team_id(case.id)
        sr_record = import_service_request(resource).record
        case = await case_for(
            session, actor, resource_type, resource, patient_id, sr_record.priority
        )
        sr_record = import_service_request(resource, _context(case)).record
        row = await add_intervention(session, actor, case, intervention_create(sr_record))
        assign_fields(row, sr_record, INTERVENTION_RECEIVED)
        return row.id
    except ResourceRejected as exc:
        raise FhirRejected(str(exc), extra={"issues": exc.outcome["issue"]}) from exc


def _context(case: Case) -> CaseContext:
    return CaseContext(case.id, case.patient_id)
