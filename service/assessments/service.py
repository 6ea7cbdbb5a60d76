"""Assessment rules: one initial assessment per case, re-assessments only after it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import AssessmentKind, NeedStatus
from service.assessments.models import Assessment, Need, Risk
from service.assessments.schemas import (
    AssessmentCreate,
    AssessmentUpdate,
    NeedCreate,
    NeedIn,
    NeedUpdate,
)
from service.auth.deps import Actor
from service.cases.models import Case
from service.cases.service import add_record, change_record
from service.db.base import touch, utcnow
from service.db.unit_of_work import UnitOfWork
from service.errors import RuleViolation


async def _count_initial(session: AsyncSession, case_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Assessment)
        .where(Assessment.case_id == case_id, Assessment.kind == AssessmentKind.initial)
    )
    return count or 0


def check_assessment_kind(kind: AssessmentKind, initial_count: int) -> None:
    """A case has one initial assessment, and reassessments after it; `initial_count`: the
    initial assessments the case has before this one."""
    if kind is AssessmentKind.initial and initial_count:
        raise RuleViolation(
            "assessment.initial.once", "the case has its initial assessment; add a reassessment"
        )
    if kind is AssessmentKind.reassessment and not initial_count:
        raise RuleViolation(
            "assessment.reassessment.after-initial", "a reassessment needs an initial assessment"
        )


def _need_row(data: NeedIn, case_id: str, assessment_id: str | None) -> Need:
    return Need(
        case_id=case_id,
        assessment_id=assessment_id,
        domain=data.domain,
        description=data.description,
        severity=data.severity,
        status=NeedStatus.active,
        code=data.code.model_dump(exclude_none=True) if data.code else None,
        fhir_extras={},
    )


async def add_assessment(
    session: UnitOfWork, actor: Actor, case: Case, data: AssessmentCreate
) -> Assessment:
    check_assessment_kind(data.kind, await _count_initial(session, case.id))
    row = Assessment(
        kind=data.kind,
        performed_at=data.performed_at or utcnow(),
        performed_by=actor.id,
        summary=data.summary,
        strengths=list(data.strengths),
        preferences=list(data.preferences),
        risks=[Risk(description=r.description, level=r.level) for r in data.risks],
    )
    assessment = await add_record(session, actor, case, row, "assessment", data)
    for need in data.needs:
        await add_record(
            session, actor, case, _need_row(need, case.id, assessment.id), "need", need
        )
    return assessment


async def change_assessment(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    row: Assessment,
    data: AssessmentUpdate,
    expected: int | None,
) -> Assessment:
    extra: dict[str, list[Any]] = {}
    if data.risks is not None:
        row.risks = [Risk(description=r.description, level=r.level) for r in data.risks]
        extra["risks"] = [None, [r.model_dump(mode="json") for r in data.risks]]
        touch(row)
    return await change_record(
        session,
        actor,
        row,
        "assessment",
        data,
        expected,
        exclude=frozenset({"risks"}),
        extra_changes=extra,
    )


async def add_need(session: UnitOfWork, actor: Actor, case: Case, data: NeedCreate) -> Need:
    if data.assessment_id is not None:
        owner = await session.scalar(
            select(Assessment.case_id).where(Assessment.id == data.assessment_id)
        )
        if owner != case.id:
            raise RuleViolation(
                "links.same-case", f"assessment {data.assessment_id} is not one of this case's"
            )
    return await add_record(
        session, actor, case, _need_row(data, case.id, data.assessment_id), "need", data
    )


async def change_need(
    session: UnitOfWork,
    actor: Actor,
    case: Case,
    row: Need,
    data: NeedUpdate,
    expected: int | None,
) -> Need:
    return await change_record(session, actor, row, "need", data, expected)
