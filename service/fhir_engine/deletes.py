"""`DELETE /fhir/Goal/{id}`, `/ServiceRequest/{id}` and `/Condition/{id}`: where delete means
something for a case (FHIR R4 http.html#delete lets a server refuse one it cannot do: 405, or
409 when the resource's state forbids it).

A goal still `proposed` or `planned`, a referral still a `draft`, or a need that no goal or
referral addresses and no assessment found, may be withdrawn: the record leaves the case, its
FHIR resource gets a deleted version (reads answer 410) and the case history notes who removed
it. Anything further along is part of the case's record; deleting it would rewrite history, so
the answer is a 409 that says how to end it instead (cancel the goal, revoke the referral,
resolve the need). Other types are not deletable on their own (405, saying why): a CarePlan
ends when its case is closed, the CareTeam is the case's own (its members leave by being made
inactive), a Patient is kept while any record names them, and Provenance is history.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import GoalLifecycle, InterventionStatus
from service.assessments.models import Need
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.history import record_event
from service.cases.service import load_open_case
from service.db.unit_of_work import UnitOfWork
from service.errors import CaseBridgeError, Conflict
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_store.models import StoredResource
from service.fhir_store.repository import current
from service.plans.models import (
    Goal,
    Intervention,
    goal_needs,
    intervention_goals,
    intervention_needs,
)

DELETABLE = frozenset({"Goal", "ServiceRequest", "Condition"})
# Why the others are not deleted on their own.
NOT_DELETABLE = {
    "CarePlan": "a CarePlan ends when its case is closed: PUT it with status completed or "
    "revoked and a closure reason",
    "CareTeam": "the CareTeam is the case's own; a member leaves by being sent inactive in a PUT",
    "Patient": "a patient is kept while their cases and history name them",
    "Provenance": "a Provenance is the history of the records it names",
}
WITHDRAWABLE_GOALS = frozenset({GoalLifecycle.proposed, GoalLifecycle.planned})


class MethodNotAllowed(CaseBridgeError):
    status = 405
    kind = "method-not-allowed"
    title = "Not allowed on this resource type"


async def delete_resource(
    session: UnitOfWork, principal: FhirPrincipal, resource_type: str, resource_id: str
) -> StoredResource:
    """Withdraw the record; returns the stored resource, now deleted."""
    if resource_type not in DELETABLE:
        why = NOT_DELETABLE.get(resource_type, "it follows its case")
        raise MethodNotAllowed(f"a {resource_type} is not deleted here: {why}")
    stored = await current(session, resource_type, resource_id)
    principal.require(resource_type, Interaction.delete, patient_id=stored.patient_id)
    assert stored.case_id is not None  # every Goal and ServiceRequest here belongs to a case
    case = await load_open_case(session, stored.case_id)
    model: type[Goal] | type[Intervention] | type[Need]
    if resource_type == "Goal":
        model = Goal
        goal = await session.get_one(Goal, resource_id)
        await _check_goal_withdrawable(session, goal)
    elif resource_type == "Condition":
        model = Need
        await _check_need_withdrawable(session, await session.get_one(Need, resource_id))
    else:
        model = Intervention
        intervention = await session.get_one(Intervention, resource_id)
        if intervention.status != InterventionStatus.draft:
            raise Conflict(
                f"ServiceRequest/{resource_id} is {intervention.status.value}, not a draft; "
                "revoke it (status=revoked) instead of deleting it"
            )
    actor = Actor(f"client:{principal.subject}", Role.case_manager)
    await session.execute(delete(model).where(model.id == resource_id))
    entity = {"Goal": "goal", "Condition": "need"}.get(resource_type, "intervention")
    record_event(
        session,
        case_id=case.id,
        actor=actor,
        action="deleted",
        entity=entity,
        entity_id=resource_id,
        changes={},
    )
    await session.project()
    await session.refresh(stored)
    return stored


async def _check_goal_withdrawable(session: AsyncSession, goal: Goal) -> None:
    if goal.lifecycle_status not in WITHDRAWABLE_GOALS:
        raise Conflict(
            f"Goal/{goal.id} is {goal.lifecycle_status.value}; cancel it "
            "(lifecycleStatus=cancelled) instead of deleting it"
        )
    users = list(
        await session.scalars(
            select(intervention_goals.c.intervention_id).where(
                intervention_goals.c.goal_id == goal.id
            )
        )
    )
    if users:
        raise Conflict(
            f"Goal/{goal.id} is a goal of ServiceRequest/{', ServiceRequest/'.join(users)}; "
            "unlink it there first"
        )


async def _check_need_withdrawable(session: AsyncSession, need: Need) -> None:
    if need.assessment_id is not None:
        raise Conflict(
            f"Condition/{need.id} was found by assessment {need.assessment_id}; resolve it "
            "(clinicalStatus=resolved) instead of deleting it"
        )
    goals = list(
        await session.scalars(select(goal_needs.c.goal_id).where(goal_needs.c.need_id == need.id))
    )
    referrals = list(
        await session.scalars(
            select(intervention_needs.c.intervention_id).where(
                intervention_needs.c.need_id == need.id
            )
        )
    )
    if users := [f"Goal/{g}" for g in goals] + [f"ServiceRequest/{i}" for i in referrals]:
        raise Conflict(f"Condition/{need.id} is addressed by {', '.join(users)}; unlink it first")
