"""Check-ins: a monitoring contact records notes and progress against the case's goals."""

from __future__ import annotations

from sqlalchemy.orm import selectinload

from service.auth.deps import Actor
from service.cases.models import Case
from service.cases.service import add_record, change_record, load_child
from service.checkins.models import CheckIn
from service.checkins.schemas import CheckInCreate, CheckInUpdate
from service.db.base import utcnow
from service.db.unit_of_work import UnitOfWork
from service.plans.models import Goal
from service.plans.schemas import GoalProgressCreate
from service.plans.service import record_progress


async def add_check_in(
    session: UnitOfWork, actor: Actor, case: Case, data: CheckInCreate
) -> CheckIn:
    row = CheckIn(
        occurred_at=data.occurred_at or utcnow(),
        mode=data.mode,
        performed_by=actor.id,
        notes=data.notes,
    )
    check_in = await add_record(session, actor, case, row, "check_in", data)
    for item in data.goal_progress:
        goal = await load_child(session, Goal, case.id, item.goal_id, selectinload(Goal.progress))
        progress = GoalProgressCreate(note=item.note, achievement_status=item.achievement_status)
        await record_progress(session, actor, case, goal, progress, check_in_id=check_in.id)
    return check_in


async def change_check_in(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    row: CheckIn,
    data: CheckInUpdate,
    expected: int | None,
) -> CheckIn:
    return await change_record(session, actor, row, "check_in", data, expected)
