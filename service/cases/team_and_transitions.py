"""Service functions for the case's plain records: care-team members, transitions, notes."""

from __future__ import annotations

from mappings.vocabulary import TransitionStatus
from service.auth.deps import Actor
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
from service.errors import RuleViolation


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
