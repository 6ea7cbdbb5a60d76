"""Goal and intervention rules.

- A goal is achieved (or completed) only while its case is in service (active, monitoring,
  transition): `goal.achieved.case-active`.
- A referral completes only with its outcome recorded, so the loop is closed:
  `referral.complete.outcome`.
- Links to needs and goals stay inside the case: `links.same-case`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import (
    GoalAchievement,
    GoalLifecycle,
    InterventionKind,
    InterventionStatus,
)
from service.assessments.models import Need
from service.auth.deps import Actor
from service.cases.history import record_event
from service.cases.lifecycle import IN_SERVICE
from service.cases.models import Case, CaseChild
from service.cases.service import add_record, change_record
from service.db.base import new_id, utcnow
from service.db.unit_of_work import UnitOfWork
from service.errors import RuleViolation
from service.plans.models import Goal, GoalProgress, Intervention
from service.plans.schemas import (
    GoalCreate,
    GoalProgressCreate,
    GoalTarget,
    GoalUpdate,
    InterventionCreate,
    InterventionUpdate,
    Performer,
)

LinkedT = TypeVar("LinkedT", bound=CaseChild)


async def linked_records(
    session: AsyncSession, model: type[LinkedT], case: Case, ids: Sequence[str]
) -> list[LinkedT]:
    """The case's records with these ids; any id outside the case breaks `links.same-case`."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    rows = (
        await session.scalars(select(model).where(model.case_id == case.id, model.id.in_(wanted)))
    ).all()
    check_links(model, set(wanted) - {row.id for row in rows})
    by_id = {row.id: row for row in rows}
    return [by_id[i] for i in wanted]


def check_links(model: type[CaseChild], missing: set[str]) -> None:
    """`missing`: linked ids that name none of the case's records of `model`."""
    if missing:
        raise RuleViolation(
            "links.same-case",
            f"{model.__name__} {', '.join(sorted(missing))} are not records of this case",
        )


def check_goal_state(case: Case, goal: Goal) -> None:
    finished = (
        goal.achievement_status is GoalAchievement.achieved
        or goal.lifecycle_status is GoalLifecycle.completed
    )
    if finished and case.status not in IN_SERVICE:
        raise RuleViolation(
            "goal.achieved.case-active",
            f"a goal can be achieved only while its case is active (case is {case.status})",
        )


def _target_columns(target: GoalTarget | None) -> dict[str, Any]:
    target = target or GoalTarget()
    return {
        "target_measure": target.measure.model_dump(exclude_none=True) if target.measure else None,
        "target_detail_quantity": target.detail_quantity,
        "target_detail_unit": target.detail_unit,
        "target_detail_text": target.detail_text,
        "target_due_date": target.due_date,
    }


async def add_goal(session: UnitOfWork, actor: Actor, case: Case, data: GoalCreate) -> Goal:
    goal = Goal(
        description=data.description,
        code=data.code.model_dump(exclude_none=True) if data.code else None,
        expressed_by=data.expressed_by,
        priority=data.priority,
        lifecycle_status=data.lifecycle_status,
        achievement_status=data.achievement_status,
        start_date=data.start_date,
        fhir_extras={},
        needs=await linked_records(session, Need, case, data.need_ids),
        **_target_columns(data.target),
    )
    check_goal_state(case, goal)
    return await add_record(session, actor, case, goal, "goal", data)


async def change_goal(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    goal: Goal,
    data: GoalUpdate,
    expected: int | None,
) -> Goal:
    extra: dict[str, list[Any]] = {}
    if data.need_ids is not None:
        before = goal.need_ids
        goal.needs = await linked_records(session, Need, case, data.need_ids)
        if before != goal.need_ids:
            extra["need_ids"] = [before, goal.need_ids]
    if "target" in data.model_fields_set:
        before_target = goal.target
        for column, value in _target_columns(data.target).items():
            setattr(goal, column, value)
        if before_target != goal.target:
            extra["target"] = [before_target, goal.target]
    goal = await change_record(
        session,
        actor,
        goal,
        "goal",
        data,
        expected,
        exclude=frozenset({"need_ids", "target"}),
        extra_changes=extra,
    )
    check_goal_state(case, goal)
    return goal


async def record_progress(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    goal: Goal,
    data: GoalProgressCreate,
    check_in_id: str | None = None,
) -> GoalProgress:
    """Append progress to a goal; a new achievement status becomes the goal's own."""
    entry = GoalProgress(
        id=new_id(),
        goal_id=goal.id,
        check_in_id=check_in_id,
        recorded_at=utcnow(),
        recorded_by=actor.id,
        achievement_status=data.achievement_status,
        note=data.note,
    )
    goal.progress.append(entry)
    changes: dict[str, list[Any]] = {"progress": [None, data.note]}
    if data.achievement_status is not None and data.achievement_status != goal.achievement_status:
        changes["achievement_status"] = [goal.achievement_status, data.achievement_status]
        goal.achievement_status = data.achievement_status
    else:
        goal.updated_at = utcnow()  # the goal changed (new progress): its ETag moves on
    check_goal_state(case, goal)
    await session.flush()
    record_event(
        session,
        case_id=case.id,
        actor=actor,
        action="progress",
        entity="goal",
        entity_id=goal.id,
        changes=changes,
    )
    return entry


def check_intervention(row: Intervention) -> None:
    completed = row.status is InterventionStatus.completed
    if completed and row.kind is InterventionKind.referral and row.referral_outcome is None:
        raise RuleViolation(
            "referral.complete.outcome", "a referral completes only with its referral_outcome"
        )
    if row.scheduled_start and row.scheduled_end and row.scheduled_end < row.scheduled_start:
        raise RuleViolation(
            "intervention.schedule.order", "scheduled_end is before scheduled_start"
        )


def _performer_columns(performer: Performer | None) -> dict[str, Any]:
    return {
        "performer_kind": performer.kind if performer else None,
        "performer_name": performer.name if performer else None,
        "performer_identifier": (
            performer.identifier.model_dump() if performer and performer.identifier else None
        ),
    }


async def add_intervention(
    session: UnitOfWork, actor: Actor, case: Case, data: InterventionCreate
) -> Intervention:
    row = Intervention(
        kind=data.kind,
        type=data.type,
        description=data.description,
        code=data.code.model_dump(exclude_none=True) if data.code else None,
        status=data.status,
        priority=data.priority,
        scheduled_start=data.scheduled_start,
        scheduled_end=data.scheduled_end,
        requested_by=actor.id,
        referral_outcome=data.referral_outcome,
        outcome_note=data.outcome_note,
        fhir_extras={},
        goals=await linked_records(session, Goal, case, data.goal_ids),
        needs=await linked_records(session, Need, case, data.need_ids),
        **_performer_columns(data.performer),
    )
    check_intervention(row)
    return await add_record(session, actor, case, row, "intervention", data)


async def change_intervention(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    row: Intervention,
    data: InterventionUpdate,
    expected: int | None,
) -> Intervention:
    extra: dict[str, list[Any]] = {}
    if data.goal_ids is not None:
        before = row.goal_ids
        row.goals = await linked_records(session, Goal, case, data.goal_ids)
        if before != row.goal_ids:
            extra["goal_ids"] = [before, row.goal_ids]
    if data.need_ids is not None:
        before = row.need_ids
        row.needs = await linked_records(session, Need, case, data.need_ids)
        if before != row.need_ids:
            extra["need_ids"] = [before, row.need_ids]
    if "performer" in data.model_fields_set:
        before_performer = row.performer
        for column, value in _performer_columns(data.performer).items():
            setattr(row, column, value)
        if before_performer != row.performer:
            extra["performer"] = [before_performer, row.performer]
    row = await change_record(
        session,
        actor,
        row,
        "intervention",
        data,
        expected,
        exclude=frozenset({"goal_ids", "need_ids", "performer"}),
        extra_changes=extra,
    )
    check_intervention(row)
    return row
