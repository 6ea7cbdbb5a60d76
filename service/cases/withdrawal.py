"""Withdrawing a case opened in error: what `DELETE /fhir/CarePlan/{id}` does to a case (FHIR R4
http.html#delete lets a server refuse a delete the resource's state forbids, with 409).

A case may be withdrawn while nothing in it has happened yet. Precisely, all of these hold:

- its status is one FHIR shows as `draft` (referral, intake, assessment, planning);
- every goal is still `proposed` or `planned`, every referral still a `draft`;
- no assessment, check-in or transition of care is recorded;
- it was never exchanged with an EHR: no push of it, and none of its resources linked to an
  EHR's (ehr_resource_links).

Withdrawing it removes its goals, referrals and needs, makes every care-team member inactive,
and sets its status to `entered_in_error` (final; CarePlan.status `entered-in-error` in
case_status.csv). Such a case projects no FHIR resource (mappings/projection.py), so each of its
resources gets a deleted version when the change commits; the case row and its history stay,
the history noting who withdrew it. Anything further along is part of the case's record: the
refusal says to close the case instead (status completed or revoked, with a reason).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import CaseStatus, GoalLifecycle, InterventionStatus
from service.assessments.models import Assessment, Need
from service.auth.deps import Actor
from service.cases.history import record_event
from service.cases.models import CareTeamMember, Case, Transition
from service.checkins.models import CheckIn
from service.db.base import utcnow
from service.db.counts import count_of, nonzero_counts
from service.db.unit_of_work import UnitOfWork
from service.errors import Conflict
from service.fhir_store.models import StoredResource
from service.links.models import ResourceLink
from service.plans.models import Goal, Intervention
from service.push.models import PushSync

WITHDRAWABLE_STATES = frozenset(
    {CaseStatus.referral, CaseStatus.intake, CaseStatus.assessment, CaseStatus.planning}
)
WITHDRAWABLE_GOALS = frozenset({GoalLifecycle.proposed, GoalLifecycle.planned})
HOW_TO_END = (
    "end the case instead: update its CarePlan with status completed or revoked and a "
    "closure reason"
)


async def withdrawal_blockers(session: AsyncSession, case: Case) -> list[str]:
    """What in the case is further along than a withdrawal allows (empty: it may go)."""
    found: list[str] = []
    if case.status not in WITHDRAWABLE_STATES:
        found.append(f"the case is {case.status.value}")
    counts = {
        "goal(s) past planned": count_of(
            Goal, Goal.case_id == case.id, Goal.lifecycle_status.not_in(WITHDRAWABLE_GOALS)
        ),
        "referral(s) past draft": count_of(
            Intervention,
            Intervention.case_id == case.id,
            Intervention.status != InterventionStatus.draft,
        ),
        "assessment(s)": count_of(Assessment, Assessment.case_id == case.id),
        "check-in(s)": count_of(CheckIn, CheckIn.case_id == case.id),
        "transition(s) of care": count_of(Transition, Transition.case_id == case.id),
        "push(es) to an EHR": count_of(PushSync, PushSync.case_id == case.id),
        "resource(s) linked to an EHR's": count_of(
            ResourceLink, StoredResource.case_id == case.id
        ).join(
            StoredResource,
            (StoredResource.resource_type == ResourceLink.resource_type)
            & (StoredResource.id == ResourceLink.local_id),
        ),
    }
    return found + await nonzero_counts(session, counts)


async def withdraw_case(session: UnitOfWork, actor: Actor, case: Case) -> None:
    """Withdraw the case (see the module), or raise a 409 saying what holds it and how to end
    it instead. `case` is loaded for update."""
    if blockers := await withdrawal_blockers(session, case):
        raise Conflict(
            f"CarePlan/{case.id} is not withdrawn: its case has {', '.join(blockers)}; "
            + HOW_TO_END
        )
    for model in (Goal, Intervention, Need):  # their links go with them (ON DELETE CASCADE)
        await session.execute(delete(model).where(model.case_id == case.id))
    for member in await session.scalars(
        select(CareTeamMember).where(CareTeamMember.case_id == case.id, CareTeamMember.active)
    ):
        member.active = False
    before = case.status
    case.status = CaseStatus.entered_in_error
    case.closed_at = utcnow()
    await session.flush()
    record_event(
        session,
        case_id=case.id,
        actor=actor,
        action="withdrawn",
        entity="case",
        entity_id=case.id,
        changes={"status": [before, case.status]},
    )
