"""Which changed cases the outbox holds back: a case whose CarePlan would reach the EHR as an
empty draft (a case status projected as `draft`, with no need, goal or intervention) is not
queued. Opening a case then writes nothing to the EHR; its first push follows the first record
the plan holds, or its move to a status that is no draft (`case_status.csv`). Nothing is lost
by waiting: that push sends the whole case as it then is. A case withdrawn as entered in error
is held back for good: it has no records left, and was never pushed (service/cases/withdrawal.py
refuses one that was)."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.concept_maps import CASE_STATUS
from mappings.vocabulary import CaseStatus
from service.assessments.models import Need
from service.cases.models import Case
from service.plans.models import Goal, Intervention

DRAFT_STATUSES = frozenset(s for s, code in CASE_STATUS.to_fhir.items() if code == "draft")
HELD_STATUSES = DRAFT_STATUSES | {CaseStatus.entered_in_error}


async def empty_drafts(session: AsyncSession, case_ids: list[str]) -> set[str]:
    """The cases of `case_ids` whose plan is an empty draft."""
    if not case_ids:
        return set()
    holds_content = [
        exists().where(model.case_id == Case.id) for model in (Need, Goal, Intervention)
    ]
    rows = await session.scalars(
        select(Case.id).where(
            Case.id.in_(case_ids),
            Case.status.in_(HELD_STATUSES),
            *(~content for content in holds_content),
        )
    )
    return set(rows)
