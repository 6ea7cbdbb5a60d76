"""Service functions for the case's plain records: care-team members, transitions, notes."""

from __future__ import annotations

from sqlalchemy import func, select

from mappings.to_fhir.context import care_team_id
from mappings.vocabulary import TransitionStatus
from service.auth.deps import Actor
from service.cases.history import record_event
from service.cases.models import CareTeamMember, Case, Note, Transition
from service.cases.schemas import (
    CareTeamMemberCreate,
    CareTeamMemberUpdate,
    NoteCreate,
    NoteUpdate,
    TransitionCreate,
    TransitionUpdate,
)
from service.cases.service import add_record, change_record
from service.db.unit_of_work import UnitOfWork
from service.errors import Conflict, RuleViolation
from service.links.models import ResourceLink


async def add_member(
    session: UnitOfWork, actor: Actor, case: Case, data: CareTeamMemberCreate
) -> CareTeamMember:
    row = CareTeamMember(**data.model_dump())
    return await add_record(session, actor, case, row, "care_team_member", data)


async def change_member(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    row: CareTeamMember,
    data: CareTeamMemberUpdate,
    expected: int | None,
) -> CareTeamMember:
    return await change_record(session, actor, row, "care_team_member", data, expected)


async def dismiss_team(session: UnitOfWork, actor: Actor, case: Case) -> None:
    """The case's care team, entered as a whole in error, leaves the case (`DELETE
    /fhir/CareTeam/{id}`; FHIR R4 http.html#delete). Its members are removed and the case
    history notes who removed how many; a case without members projects no CareTeam
    (mappings/projection.py), so the CareTeam reads 410 and the CarePlan drops `careTeam`
    when the change commits. A new team can be sent again (POST CareTeam).

    A team exchanged with an EHR is part of both records: it is refused (409), and its
    members leave one by one by being sent inactive, which the push carries to the EHR."""
    team_id = care_team_id(case.id)
    linked = await session.scalar(
        select(func.count())
        .select_from(ResourceLink)
        .where(ResourceLink.resource_type == "CareTeam", ResourceLink.local_id == team_id)
    )
    if linked:
        raise Conflict(
            f"CareTeam/{team_id} was exchanged with an EHR and is not deleted: a member "
            "leaves by being sent inactive (active: false) in a PUT of the CareTeam"
        )
    members = list(
        await session.scalars(select(CareTeamMember).where(CareTeamMember.case_id == case.id))
    )
    for member in members:
        await session.delete(member)
    case.fhir_extras = {k: v for k, v in (case.fhir_extras or {}).items() if k != "CareTeam"}
    await session.flush()
    record_event(
        session,
        case_id=case.id,
        actor=actor,
        action="deleted",
        entity="care_team",
        entity_id=case.id,  # the team is the case's own (its id is longer than the column)
        changes={"members": [len(members), 0]},
    )


def check_transition(row: Transition) -> None:
    if row.status is TransitionStatus.completed and row.actual_date is None:
        raise RuleViolation(
            "transition.complete.date", "a completed transition needs its actual_date"
        )
    if row.from_setting == row.to_setting:
        raise RuleViolation("transition.settings.differ", "from_setting and to_setting are equal")


async def add_transition(
    session: UnitOfWork, actor: Actor, case: Case, data: TransitionCreate
) -> Transition:
    row = Transition(**data.model_dump())
    check_transition(row)
    return await add_record(session, actor, case, row, "transition", data)


async def change_transition(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    row: Transition,
    data: TransitionUpdate,
    expected: int | None,
) -> Transition:
    updated = await change_record(session, actor, row, "transition", data, expected)
    check_transition(updated)  # raising rolls the whole request back
    return updated


async def add_note(session: UnitOfWork, actor: Actor, case: Case, data: NoteCreate) -> Note:
    row = Note(text=data.text, author=actor.id)
    return await add_record(session, actor, case, row, "note", data)


async def change_note(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    row: Note,
    data: NoteUpdate,
    expected: int | None,
) -> Note:
    return await change_record(session, actor, row, "note", data, expected)
