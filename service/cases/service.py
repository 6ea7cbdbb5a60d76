"""Case rules: the lifecycle, closure, and that a closed case is final.

- A case closes only with a reason (`case.close.reason`) and with no goal or intervention left
  open (`case.close.open-items`): the caller settles them first (`closure.change_case` does it
  when the request says how), so the EHR never keeps an active Goal or ServiceRequest of a
  closed plan.
- The program can change while the case is open (a case opened from EHR data may start under
  the wrong one); a closed case is final.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import CaseStatus
from service.api.concurrency import check_version
from service.auth.deps import Actor
from service.cases import repository
from service.cases.history import apply_changes, record_event, snapshot
from service.cases.lifecycle import ALLOWED_TRANSITIONS, ENDED, may_move
from service.cases.models import Case, CaseChild
from service.cases.schemas import CaseCreate, CaseUpdate
from service.db.base import touch, utcnow
from service.db.unit_of_work import UnitOfWork
from service.errors import NotFound, RuleViolation, UnprocessableEntity
from service.patients.repository import get_patient

ChildT = TypeVar("ChildT", bound=CaseChild)

OPENING_STATES = frozenset({CaseStatus.referral, CaseStatus.intake})


async def load_case(session: AsyncSession, case_id: str, *, for_update: bool = False) -> Case:
    case = await repository.get_case(session, case_id, for_update=for_update)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


async def load_open_case(session: AsyncSession, case_id: str) -> Case:
    """The case, locked for a change to its records; a closed case refuses changes."""
    case = await load_case(session, case_id, for_update=True)
    if case.status is CaseStatus.entered_in_error:
        raise RuleViolation("case.closed.final", "the case was withdrawn as entered in error")
    if case.status is CaseStatus.closed:
        raise RuleViolation("case.closed.final", "the case is closed; its records are final")
    return case


async def load_child(
    session: AsyncSession, model: type[ChildT], case_id: str, child_id: str, *options: Any
) -> ChildT:
    row = await repository.get_child(session, model, case_id, child_id, *options)
    if row is None:
        raise NotFound(f"no {model.__name__} record {child_id} in case {case_id}")
    return row


async def open_case(session: UnitOfWork, actor: Actor, data: CaseCreate) -> Case:
    if await get_patient(session, data.patient_id) is None:
        raise UnprocessableEntity(f"patient_id {data.patient_id} names no patient")
    if data.status not in OPENING_STATES:
        raise RuleViolation("case.open.status", "a case opens at referral or intake")
    case = Case(
        patient_id=data.patient_id,
        program=data.program,
        title=data.title,
        manager=data.manager,
        priority=data.priority,
        status=data.status,
        fhir_extras={},
    )
    session.add(case)
    await session.flush()
    record_event(
        session,
        case_id=case.id,
        actor=actor,
        action="created",
        entity="case",
        entity_id=case.id,
        changes=snapshot(data),
    )
    return case


def is_closing(case: Case, data: CaseUpdate) -> bool:
    return data.status is CaseStatus.closed and case.status is not CaseStatus.closed


def check_status_change(case: Case, data: CaseUpdate) -> None:
    target = data.status
    closing = is_closing(case, data)
    if case.status in ENDED:
        raise RuleViolation("case.closed.final", f"a {case.status.value} case cannot change")
    if target is not None and target is not case.status and not may_move(case.status, target):
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[case.status])) or "none"
        raise RuleViolation(
            "case.status.transition",
            f"a case cannot move from {case.status} to {target} (allowed: {allowed})",
        )
    if closing and data.closure_reason is None:
        raise RuleViolation("case.close.reason", "closing a case needs a closure_reason")
    if not closing and (data.closure_reason is not None or data.closure_note is not None):
        raise RuleViolation(
            "case.close.reason", "closure_reason and closure_note are given only when closing"
        )
    if not closing and data.open_items is not None:
        raise RuleViolation("case.close.open-items", "open_items is given only when closing")


def check_closed_state(case: Case) -> None:
    """A closed case says why it closed (`case.close.reason`, as `check_status_change` asks of
    a closure on `/api`)."""
    if case.status is CaseStatus.closed and case.closure_reason is None:
        raise RuleViolation("case.close.reason", "a closed case needs a closure_reason")


async def check_nothing_left_open(session: AsyncSession, case: Case) -> None:
    """Refuse to close a case while goals or interventions are open, naming each of them."""
    goals, interventions = await repository.open_plan_items(session, case.id)
    if not goals and not interventions:
        return
    items = [
        {
            "id": g.id,
            "resource_type": "Goal",
            "description": g.description,
            "status": g.lifecycle_status.value,
        }
        for g in goals
    ] + [
        {
            "id": i.id,
            "resource_type": "ServiceRequest",
            "kind": i.kind.value,
            "description": i.description or i.type.value,
            "status": i.status.value,
        }
        for i in interventions
    ]
    named = ", ".join(f"{item['resource_type']}/{item['id']} ({item['status']})" for item in items)
    raise RuleViolation(
        "case.close.open-items",
        f"the case has open goals or referrals: {named}; complete or cancel them first "
        "(on /api, `open_items` does it with the closure)",
        extra={"open_items": items},
    )


async def update_case(
    session: UnitOfWork, actor: Actor, case: Case, data: CaseUpdate, expected: int | None
) -> Case:
    check_version(case.version, expected)
    check_status_change(case, data)
    if is_closing(case, data):
        await check_nothing_left_open(session, case)
    changes = apply_changes(case, data, frozenset({"open_items"}))
    if case.status is CaseStatus.closed and case.closed_at is None:
        case.closed_at = utcnow()
    if changes:
        await session.flush()
        record_event(
            session,
            case_id=case.id,
            actor=actor,
            action="updated",
            entity="case",
            entity_id=case.id,
            changes=changes,
        )
    return case


async def add_record(
    session: UnitOfWork, actor: Actor, case: Case, row: ChildT, entity: str, data: BaseModel
) -> ChildT:
    """Store a new record of the case and note it in the case history."""
    row.case_id = case.id
    session.add(row)
    await session.flush()
    record_event(
        session,
        case_id=case.id,
        actor=actor,
        action="created",
        entity=entity,
        entity_id=row.id,
        changes=snapshot(data),
    )
    return row


async def change_record(
    session: UnitOfWork,
    actor: Actor,
    row: ChildT,
    entity: str,
    data: BaseModel,
    expected: int | None,
    *,
    exclude: frozenset[str] = frozenset(),
    extra_changes: dict[str, list[Any]] | None = None,
) -> ChildT:
    """Apply the sent fields (bar `exclude`, which the caller handles) and note the change."""
    check_version(row.version, expected)
    column_changes = apply_changes(row, data, exclude)
    if extra_changes and not column_changes:
        touch(row)  # only links changed: the row's version must still move on
    changes = column_changes | (extra_changes or {})
    if changes:
        await session.flush()
        record_event(
            session,
            case_id=row.case_id,
            actor=actor,
            action="updated",
            entity=entity,
            entity_id=row.id,
            changes=changes,
        )
    return row
