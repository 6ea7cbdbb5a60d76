"""`DELETE /fhir/{type}/{id}`: where delete means something for a case (FHIR R4
http.html#delete lets a server refuse one it cannot do: 405, or 409 when the resource's state
or the references to it forbid it). Deleting what is already deleted changes nothing and
answers as the first delete did (R4: "has no effect ... 200 OK or 204 No Content").

- A goal still `proposed` or `planned`, a referral still a `draft`, or a need that no goal or
  referral addresses and no assessment found, may be withdrawn: the record leaves the case, its
  FHIR resource gets a deleted version (reads answer 410) and the case history notes who.
  Anything further along is part of the case's record; deleting it would rewrite history, so
  the answer is a 409 that says how to end it instead (cancel, revoke, resolve).
- A CarePlan is the case: deleting it withdraws a case opened in error
  (`service.cases.withdrawal`, which says precisely when), and every resource of the case gets
  a deleted version; otherwise a 409 says to close the case instead.
- A Patient is deleted when nothing names them (`service.patients.removal`); otherwise a 409
  counts what does.
- A CareTeam is the case's team entered in error as a whole: its members leave the case
  (`service.cases.team_and_transitions.dismiss_team`), the CareTeam reads 410 and the CarePlan
  no longer names it; a team exchanged with an EHR is refused with 409 (its members leave one
  by one, by being sent inactive in a PUT).
- Provenance, Practitioner and Organization are the service's own records (`read_only`): 405.

Conditional delete (`DELETE Type?params`, R4 http.html#3.1.0.7.1) deletes the one match; with
none it changes nothing (204); with several it is a 412 (R4 lets a server refuse to delete
more than one). Its criteria are checked strictly: an unknown parameter is a 400, never a
criterion silently dropped that would widen the match.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import InterventionStatus
from service.assessments.models import Need
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.history import record_event
from service.cases.service import load_case, load_open_case
from service.cases.team_and_transitions import dismiss_team
from service.cases.withdrawal import WITHDRAWABLE_GOALS, withdraw_case
from service.db.unit_of_work import UnitOfWork
from service.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
)
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_engine.read_only import refuse_delete
from service.fhir_engine.write_locks import lock_for_write, still_current
from service.fhir_store import repository
from service.fhir_store.models import StoredResource
from service.fhir_store.repository import latest
from service.fhir_store.search import parse_search
from service.fhir_store.writer import delete_resources
from service.patients.removal import remove_patient
from service.plans.models import (
    Goal,
    Intervention,
    goal_needs,
    intervention_goals,
    intervention_needs,
)

DELETABLE = frozenset({"Goal", "ServiceRequest", "Condition", "CarePlan", "Patient", "CareTeam"})


def _check_deletable(resource_type: str) -> None:
    if resource_type not in DELETABLE:
        refuse_delete(resource_type, otherwise="it follows its case")


async def resolve_conditional(
    session: AsyncSession,
    principal: FhirPrincipal,
    resource_type: str,
    query: list[tuple[str, str]],
) -> str | None:
    """The id `DELETE Type?params` names: its one match, None for none; 412 for several."""
    _check_deletable(resource_type)  # before the search: a refusal never depends on matches
    compartment = principal.compartment(resource_type, Interaction.delete)
    criteria = [(k, v) for k, v in query if k != "_count"]
    search = parse_search(resource_type, [*criteria, ("_count", "2")], strict=True)
    # Only criteria select: with none (only `_include`, `_sort`, ...), every resource the
    # client may delete would match, and a `_cursor` would skip matches that make it a 412.
    if not search.conditions or search.cursor or search.includes or search.revincludes:
        raise BadRequest(
            "a conditional delete names its criteria, and only criteria: "
            "DELETE Type?param=value (no _include, _revinclude or _cursor)",
            extra={"expression": ["query"]},
        )
    connection = await session.connection()
    matches, _ = await repository.search_page(connection, search, compartment)
    if len(matches) > 1:
        raise PreconditionFailed(
            f"more than one {resource_type} matches; a conditional delete deletes one"
        )
    return matches[0].id if matches else None


async def delete_resource(
    session: UnitOfWork, principal: FhirPrincipal, resource_type: str, resource_id: str
) -> StoredResource:
    """Withdraw the record; returns the stored resource, now deleted."""
    _check_deletable(resource_type)
    stored = await latest(session, resource_type, resource_id)
    if stored is None:
        raise NotFound(f"{resource_type}/{resource_id} is not known")
    principal.require(resource_type, Interaction.delete, patient_id=stored.patient_id)
    if stored.deleted:
        return stored  # already deleted: no effect (FHIR R4 http.html#delete)
    actor = Actor(f"client:{principal.subject}", Role.case_manager)
    if resource_type == "Patient":
        # The patient's row lock first: a row naming the patient (its key checked against
        # that row) then waits for this delete, or is counted by it.
        if not await lock_for_write(session, stored):
            return stored  # a concurrent delete committed first: as a repeated delete
        await remove_patient(session, resource_id)
        await delete_resources(session, [stored])
        return stored
    assert stored.case_id is not None  # every other deletable type belongs to a case
    if resource_type == "CarePlan":
        case = await load_case(session, stored.case_id, for_update=True)
        if not await still_current(session, stored):
            return stored
        await withdraw_case(session, actor, case)
        await session.project()
        await session.refresh(stored)
        return stored
    case = await load_open_case(session, stored.case_id)  # locked, as `lock_for_write` does
    if not await still_current(session, stored):
        return stored
    if resource_type == "CareTeam":
        await dismiss_team(session, actor, case)
        await session.project()
        await session.refresh(stored)
        return stored
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
