from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import CaseStatus, GoalLifecycle, InterventionStatus, Program
from service.api.pagination import fetch_page
from service.cases.lifecycle import ENDED
from service.cases.models import Case, CaseChild, CaseEvent

if TYPE_CHECKING:
    from service.plans.models import Goal, Intervention

ChildT = TypeVar("ChildT", bound=CaseChild)

# Goals that can still be overdue: not finished one way or the other.
OPEN_GOAL_STATES = (
    GoalLifecycle.proposed,
    GoalLifecycle.planned,
    GoalLifecycle.accepted,
    GoalLifecycle.active,
    GoalLifecycle.on_hold,
)
# Services not yet delivered nor called off.
OPEN_INTERVENTION_STATES = (
    InterventionStatus.draft,
    InterventionStatus.active,
    InterventionStatus.on_hold,
)


async def get_case(session: AsyncSession, case_id: str, *, for_update: bool = False) -> Case | None:
    statement = select(Case).where(Case.id == case_id)
    if for_update:
        # Serializes writes to one case's children on PostgreSQL (SQLite has one writer anyway).
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def open_cases_of(session: AsyncSession, patient_id: str) -> Sequence[Case]:
    """The patient's cases that are not closed, oldest first."""
    statement = (
        select(Case)
        .where(Case.patient_id == patient_id, Case.status.not_in(ENDED))
        .order_by(Case.opened_at, Case.id)
    )
    return (await session.scalars(statement)).all()


async def list_cases(
    session: AsyncSession,
    *,
    status: CaseStatus | None,
    program: Program | None,
    manager: str | None,
    patient_id: str | None,
    goals_overdue_on: dt.date | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Case], str | None]:
    from service.plans.models import Goal  # plans depend on cases, not the other way round

    statement = select(Case)
    if status is not None:
        statement = statement.where(Case.status == status)
    if program is not None:
        statement = statement.where(Case.program == program)
    if manager is not None:
        statement = statement.where(Case.manager == manager)
    if patient_id is not None:
        statement = statement.where(Case.patient_id == patient_id)
    if goals_overdue_on is not None:
        statement = statement.where(
            exists().where(
                Goal.case_id == Case.id,
                Goal.target_due_date < goals_overdue_on,
                Goal.lifecycle_status.in_(OPEN_GOAL_STATES),
            )
        )
    return await fetch_page(session, statement, Case.created_at, Case.id, cursor, limit)


async def get_child(
    session: AsyncSession, model: type[ChildT], case_id: str, child_id: str, *options: Any
) -> ChildT | None:
    return await session.scalar(
        select(model).where(model.case_id == case_id, model.id == child_id).options(*options)
    )


async def list_children(
    session: AsyncSession,
    model: type[ChildT],
    case_id: str,
    cursor: str | None,
    limit: int,
    *criteria: Any,
    options: Sequence[Any] = (),
) -> tuple[Sequence[ChildT], str | None]:
    statement = select(model).where(model.case_id == case_id, *criteria).options(*options)
    return await fetch_page(session, statement, model.created_at, model.id, cursor, limit)


async def list_events(
    session: AsyncSession, case_id: str, after_id: int | None, limit: int
) -> Sequence[CaseEvent]:
    statement = select(CaseEvent).where(CaseEvent.case_id == case_id)
    if after_id is not None:
        statement = statement.where(CaseEvent.id > after_id)
    return (await session.scalars(statement.order_by(CaseEvent.id).limit(limit))).all()


async def open_plan_items(
    session: AsyncSession, case_id: str
) -> tuple[Sequence[Goal], Sequence[Intervention]]:
    """The case's goals and interventions (referrals, services) that are still open."""
    from service.plans.models import Goal, Intervention

    goals = await session.scalars(
        select(Goal)
        .where(Goal.case_id == case_id, Goal.lifecycle_status.in_(OPEN_GOAL_STATES))
        .order_by(Goal.id)
    )
    interventions = await session.scalars(
        select(Intervention)
        .where(
            Intervention.case_id == case_id,
            Intervention.status.in_(OPEN_INTERVENTION_STATES),
        )
        .order_by(Intervention.id)
    )
    return goals.all(), interventions.all()
