from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response, status
from sqlalchemy.orm import selectinload

from mappings.vocabulary import InterventionKind, InterventionStatus
from service.api.concurrency import set_etag
from service.api.problems import CREATE_PROBLEMS
from service.auth.deps import ActorDep
from service.cases.records_router import RecordType, case_records_router
from service.cases.repository import OPEN_GOAL_STATES
from service.cases.service import load_child, load_open_case
from service.db.base import utcnow
from service.db.session import SessionDep
from service.plans.models import Goal, Intervention
from service.plans.schemas import (
    GoalCreate,
    GoalOut,
    GoalProgressCreate,
    GoalProgressOut,
    GoalUpdate,
    InterventionCreate,
    InterventionOut,
    InterventionUpdate,
)
from service.plans.service import (
    add_goal,
    add_intervention,
    change_goal,
    change_intervention,
    record_progress,
)

GOAL_LOADS = (selectinload(Goal.needs), selectinload(Goal.progress))


def goal_filters(
    overdue: Annotated[bool, Query(description="Only open goals past their due date")] = False,
) -> list[Any]:
    if not overdue:
        return []
    return [Goal.target_due_date < utcnow().date(), Goal.lifecycle_status.in_(OPEN_GOAL_STATES)]


def intervention_filters(
    kind: InterventionKind | None = None, status: InterventionStatus | None = None
) -> list[Any]:
    criteria: list[Any] = []
    if kind is not None:
        criteria.append(Intervention.kind == kind)
    if status is not None:
        criteria.append(Intervention.status == status)
    return criteria


goals_router = case_records_router(
    RecordType(
        path="/goals",
        model=Goal,
        create_schema=GoalCreate,
        update_schema=GoalUpdate,
        out_schema=GoalOut,
        create=add_goal,
        update=change_goal,
        load_options=GOAL_LOADS,
        list_filters=goal_filters,
    ),
    "goals",
)


@goals_router.post(
    "/goals/{goal_id}/progress", status_code=status.HTTP_201_CREATED, responses=CREATE_PROBLEMS
)
async def post_goal_progress(
    case_id: str,
    goal_id: str,
    body: GoalProgressCreate,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
) -> GoalProgressOut:
    """Append progress. No If-Match: progress entries are appended, never overwritten."""
    case = await load_open_case(session, case_id)
    goal = await load_child(session, Goal, case_id, goal_id, *GOAL_LOADS)
    entry = await record_progress(session, actor, case, goal, body)
    set_etag(response, goal.version)
    return GoalProgressOut.model_validate(entry)


interventions_router = case_records_router(
    RecordType(
        path="/interventions",
        model=Intervention,
        create_schema=InterventionCreate,
        update_schema=InterventionUpdate,
        out_schema=InterventionOut,
        create=add_intervention,
        update=change_intervention,
        load_options=(selectinload(Intervention.goals), selectinload(Intervention.needs)),
        list_filters=intervention_filters,
    ),
    "interventions and referrals",
)
