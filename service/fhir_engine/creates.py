"""`POST /fhir/{type}`: create, and conditional create with `If-None-Exist`.

What a lone resource means for a case:

- a **CarePlan** opens a new case (the same mapping as a one-entry transaction);
- a **ServiceRequest** is a new intervention of the case its `basedOn` CarePlan names;
- a **Goal** is a new goal of the patient's one open case (a Goal cannot name its CarePlan, so
  a patient with several open cases must send the Goal in a transaction with its CarePlan).

Other types are parts of a case that only arrive with it (a transaction), or the service's own
record (Provenance); creating them alone is refused with a 422 that says so. The server assigns
ids; a client's `id` is ignored, as FHIR requires of create.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.from_fhir import ResourceRejected, import_goal, import_service_request
from mappings.to_fhir.context import CaseContext
from mappings.vocabulary import CaseStatus
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.models import Case
from service.cases.service import load_open_case
from service.db.base import new_id
from service.db.unit_of_work import UnitOfWork
from service.errors import BadRequest, PreconditionFailed, UnprocessableEntity
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_engine.conditionals import identifier_criterion, ids_with_identifier
from service.fhir_engine.own_identifiers import refuse_foreign_own_identifiers
from service.fhir_engine.responses import json_body
from service.fhir_engine.transactions import FhirRejected, create_case
from service.fhir_engine.updates import goal_update, intervention_update
from service.fhir_store.locks import lock_conditional_create
from service.fhir_store.models import StoredResource
from service.fhir_store.repository import current
from service.plans.schemas import GoalCreate, InterventionCreate
from service.plans.service import add_goal, add_intervention

CREATABLE = frozenset({"CarePlan", "Goal", "ServiceRequest"})


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
        raise UnprocessableEntity(
            f"a {resource_type} is not created on its own here; send it with its case as a "
            "transaction Bundle",
            extra={"expression": [resource_type]},
        )
    resource = json_body(body)
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise BadRequest(
            f"the body must be a {resource_type}", extra={"expression": ["resourceType"]}
        )
    patient_id = _subject(resource, resource_type)
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
    if resource_type == "CarePlan":
        resource_id = await create_case(session, principal, resource)
    else:
        resource_id = await _add_to_case(session, principal, resource_type, resource, patient_id)
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


async def _case_for(
    session: AsyncSession, resource_type: str, resource: dict[str, Any], patient_id: str
) -> Case:
    if resource_type == "ServiceRequest":
        plans = [
            str(ref.get("reference", "")).removeprefix("CarePlan/")
            for ref in resource.get("basedOn") or []
            if str(ref.get("reference", "")).startswith("CarePlan/")
        ]
        if len(plans) != 1:
            raise FhirRejected(
                "a ServiceRequest must name its case's CarePlan in basedOn (exactly one)",
                extra={"expression": ["ServiceRequest.basedOn"]},
            )
        case = await load_open_case(session, plans[0])
    else:
        open_cases = list(
            await session.scalars(
                select(Case).where(Case.patient_id == patient_id, Case.status != CaseStatus.closed)
            )
        )
        if len(open_cases) != 1:
            raise FhirRejected(
                f"Patient/{patient_id} has {len(open_cases)} open cases; a Goal joins the one "
                "open case, otherwise send it in a transaction with its CarePlan",
                extra={"expression": ["Goal.subject"]},
            )
        case = await load_open_case(session, open_cases[0].id)
    if case.patient_id != patient_id:
        raise FhirRejected(
            "the subject must be the case's patient",
            extra={"expression": [f"{resource_type}.subject"]},
        )
    return case


async def _add_to_case(
    session: UnitOfWork,
    principal: FhirPrincipal,
    resource_type: str,
    resource: dict[str, Any],
    patient_id: str,
) -> str:
    case = await _case_for(session, resource_type, resource, patient_id)
    context = CaseContext(case.id, case.patient_id)
    actor = Actor(f"client:{principal.subject}", Role.case_manager)
    try:
        if resource_type == "Goal":
            goal_record = import_goal(resource, context).record
            fields = goal_update(goal_record).model_dump(exclude_none=True)
            goal = await add_goal(session, actor, case, GoalCreate.model_validate(fields))
            goal.fhir_extras = goal_record.fhir_extras
            row_id = goal.id
        else:
            sr_record = import_service_request(resource, context).record
            fields = intervention_update(sr_record).model_dump(exclude_none=True)
            fields |= {"kind": sr_record.kind, "type": sr_record.type}
            row = await add_intervention(
                session, actor, case, InterventionCreate.model_validate(fields)
            )
            row.fhir_extras = sr_record.fhir_extras
            row.authored_at = sr_record.authored_at
            row_id = row.id
    except ResourceRejected as exc:
        raise FhirRejected(str(exc), extra={"issues": exc.outcome["issue"]}) from exc
    session.changes.note_case(
        case.id, actor.id, "goal" if resource_type == "Goal" else "intervention", row_id
    )
    return row_id
