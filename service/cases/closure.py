"""Closing a case with goals or interventions still open: the request says what becomes of them
(`open_items`: complete or cancel, for all or per id), and each changes through its own rules
(`plans.service`) before the case closes, in the same unit of work, so the push sends the
closed Goals and ServiceRequests with the CarePlan's closure. Without `open_items`,
`service.update_case` refuses the closure and names them."""

from __future__ import annotations

from mappings.vocabulary import GoalLifecycle, InterventionStatus
from service.api.concurrency import check_version
from service.auth.deps import Actor
from service.cases import repository
from service.cases.models import Case
from service.cases.schemas import CaseUpdate, OpenItemAction
from service.cases.service import check_status_change, is_closing, update_case
from service.db.unit_of_work import UnitOfWork
from service.errors import RuleViolation
from service.plans.schemas import GoalUpdate, InterventionUpdate
from service.plans.service import change_goal, change_intervention

GOAL_STATUS = {
    OpenItemAction.complete: GoalLifecycle.completed,
    OpenItemAction.cancel: GoalLifecycle.cancelled,
}
INTERVENTION_STATUS = {
    OpenItemAction.complete: InterventionStatus.completed,
    OpenItemAction.cancel: InterventionStatus.revoked,
}


async def change_case(
    session: UnitOfWork, actor: Actor, case: Case, data: CaseUpdate, expected: int | None
) -> Case:
    """`PATCH /api/cases/{id}`: the case's update, settling its open items first when it closes
    and the request says how."""
    check_version(case.version, expected)
    if data.open_items is not None and is_closing(case, data):
        check_status_change(case, data)  # a closure the lifecycle refuses touches no item
        await settle_open_items(session, actor, case, data.open_items)
    return await update_case(session, actor, case, data, None)


async def settle_open_items(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    action: OpenItemAction | dict[str, OpenItemAction],
) -> None:
    goals, interventions = await repository.open_plan_items(session, case.id)
    if isinstance(action, dict):
        open_ids = {g.id for g in goals} | {i.id for i in interventions}
        unknown = sorted(set(action) - open_ids)
        missing = sorted(open_ids - set(action))
        if unknown or missing:
            raise RuleViolation(
                "case.close.open-items",
                "open_items must name each open goal and intervention of the case, and only "
                f"those (not open or not the case's: {', '.join(unknown) or 'none'}; "
                f"missing: {', '.join(missing) or 'none'})",
            )
    for goal in goals:
        chosen = action[goal.id] if isinstance(action, dict) else action
        await change_goal(
            session, actor, case, goal, GoalUpdate(lifecycle_status=GOAL_STATUS[chosen]), None
        )
    for row in interventions:
        chosen = action[row.id] if isinstance(action, dict) else action
        update = InterventionUpdate(status=INTERVENTION_STATUS[chosen])
        await change_intervention(session, actor, case, row, update, None)
