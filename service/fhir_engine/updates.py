"""`PUT /fhir/{type}/{id}` (and its conditional form by identifier): a received version of a
case's Goal, ServiceRequest or Condition becomes an update of that record, of its CareTeam an
update of the case's team (`need_and_team_writes`); `PUT /fhir/CarePlan/{id}` updates the case
itself (`care_plan_updates`), `PUT /fhir/Patient/{id}` the patient (`patient_writes`).

The received resource is mapped (`mappings.from_fhir`), then applied through the same domain
functions as `/api` updates, so every lifecycle rule holds; content the case has no place for is
kept in `fhir_extras`. `If-Match` names the FHIR version the client read (412 otherwise).
The case is re-projected before the response, which carries the stored new version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from mappings.from_fhir import ResourceRejected, import_goal, import_service_request
from mappings.to_fhir.context import CaseContext
from service.api.concurrency import optional_version
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.service import load_child, load_open_case
from service.db.record_fields import assign_fields
from service.db.unit_of_work import UnitOfWork
from service.errors import (
    BadRequest,
    Gone,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    UnprocessableEntity,
)
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_engine.care_plan_updates import update_care_plan
from service.fhir_engine.conditionals import identifier_criterion, ids_with_identifier
from service.fhir_engine.need_and_team_writes import change_condition, set_care_team
from service.fhir_engine.own_identifiers import refuse_foreign_own_identifiers
from service.fhir_engine.patient_writes import update_patient_resource
from service.fhir_engine.read_only import refuse_update
from service.fhir_engine.responses import json_body
from service.fhir_engine.transactions import FhirRejected
from service.fhir_store.models import StoredResource
from service.fhir_store.repository import latest
from service.plans.models import Goal, Intervention
from service.plans.records import (
    GOAL_RECEIVED,
    INTERVENTION_RECEIVED,
    goal_update,
    intervention_update,
)
from service.plans.service import change_goal, change_intervention

UPDATABLE = frozenset({"CarePlan", "Goal", "ServiceRequest", "Condition", "CareTeam", "Patient"})


async def resolve_conditional(
    session: AsyncSession, resource_type: str, query: list[tuple[str, str]]
) -> str:
    """The id a conditional update (`PUT Type?identifier=system|value`) names: exactly one match,
    or 404 (this server does not create on a conditional update: a case record needs a case)."""
    system, value = identifier_criterion(query, "a conditional update")
    ids = await ids_with_identifier(session, resource_type, system, value)
    if len(ids) > 1:
        raise PreconditionFailed(f"{len(ids)} {resource_type} resources match; expected one")
    if not ids:
        raise NotFound(f"no {resource_type} has identifier {system}|{value}")
    return ids[0]


async def update_resource(
    session: UnitOfWork,
    principal: FhirPrincipal,
    resource_type: str,
    resource_id: str,
    body: bytes,
    if_match: str | None,
) -> StoredResource:
    """`PUT Type/id` from a `/fhir` client: its scopes, its If-Match, its body."""
    if resource_type not in UPDATABLE:
        refuse_update(resource_type)
        raise UnprocessableEntity(
            f"{resource_type} is not updated on its own here; send the case as a transaction",
            extra={"expression": [resource_type]},
        )
    stored = await latest(session, resource_type, resource_id)
    if stored is None:
        # R4 http.html#update: 405 when "the resource did not exist prior to the update, and
        # the server does not allow client defined ids" (updateCreate false): ids are assigned
        # here, and a case's records are made through its rules, not named by a client.
        raise MethodNotAllowed(
            f"{resource_type}/{resource_id} does not exist, and this server assigns ids: "
            f"POST the {resource_type} (with If-None-Exist to make it once), or PUT "
            f"{resource_type}?identifier=system|value to update one you made"
        )
    if stored.deleted:
        raise Gone(f"{resource_type}/{resource_id} was deleted")
    principal.require(resource_type, Interaction.update, patient_id=stored.patient_id)
    expected = optional_version(if_match)
    actor = Actor(f"client:{principal.subject}", Role.case_manager)
    return await apply_update(session, actor, stored, json_body(body), expected)


async def apply_update(
    session: UnitOfWork,
    actor: Actor,
    stored: StoredResource,
    resource: Any,
    expected_version: int | None,
) -> StoredResource:
    """A received version of a stored CarePlan, Goal or ServiceRequest applied to its case by
    `actor` (a `/fhir` client, or an EHR whose edit a push merged); `expected_version` is the
    version the sender read (412 otherwise). Returns the stored resource, re-projected."""
    resource_type, resource_id = stored.resource_type, stored.id
    if resource_type not in UPDATABLE:
        raise UnprocessableEntity(
            f"{resource_type} is not updated on its own here; send the case as a transaction",
            extra={"expression": [resource_type]},
        )
    if expected_version is not None and expected_version != stored.version_id:
        raise PreconditionFailed(
            f"current version is {stored.version_id}, If-Match named {expected_version}"
        )
    if not isinstance(resource, dict) or resource.get("id") != resource_id:
        raise BadRequest(
            f"the body must be the {resource_type} with id {resource_id}",
            extra={"expression": [f"{resource_type}.id"]},
        )
    refuse_foreign_own_identifiers(resource, resource_id, resource_type)
    if resource_type == "Patient":
        await update_patient_resource(session, actor, resource_id, resource)
        await session.project()
        await session.refresh(stored)
        return stored
    if stored.case_id is None:
        raise UnprocessableEntity(f"{resource_type}/{resource_id} belongs to no case")
    case = await load_open_case(session, stored.case_id)
    context = CaseContext(case.id, case.patient_id)
    if (resource.get("subject") or {}).get("reference") != f"Patient/{case.patient_id}":
        raise FhirRejected(
            "the subject must stay the case's patient",
            extra={"expression": [f"{resource_type}.subject"]},
        )
    try:
        if resource_type == "CarePlan":
            await update_care_plan(session, actor, case, resource, stored)
        elif resource_type == "Condition":
            await change_condition(session, actor, case, resource_id, resource)
        elif resource_type == "CareTeam":
            await set_care_team(session, actor, case, resource, creating=False)
        elif resource_type == "Goal":
            goal_record = import_goal(resource, context).record
            goal = await load_child(session, Goal, case.id, resource_id, selectinload(Goal.needs))
            goal = await change_goal(session, actor, case, goal, goal_update(goal_record), None)
            assign_fields(goal, goal_record, GOAL_RECEIVED)
        else:
            sr_record = import_service_request(resource, context).record
            row = await load_child(
                session,
                Intervention,
                case.id,
                resource_id,
                selectinload(Intervention.goals),
                selectinload(Intervention.needs),
            )
            row = await change_intervention(
                session, actor, case, row, intervention_update(sr_record), None
            )
            assign_fields(row, sr_record, INTERVENTION_RECEIVED)
    except ResourceRejected as exc:
        raise FhirRejected(str(exc), extra={"issues": exc.outcome["issue"]}) from exc
    # Kept foreign content alone may have changed: re-project in any case (no change, no version).
    entity = {
        "CarePlan": "case",
        "Goal": "goal",
        "Condition": "need",
        "CareTeam": "case",
    }.get(resource_type, "intervention")
    session.changes.note_case(case.id, actor.id, entity, resource_id)
    await session.project()  # now, so the response carries the new version
    await session.refresh(stored)
    return stored
