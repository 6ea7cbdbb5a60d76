"""A case as the mappings see it: its rows, read in a handful of queries, as a CaseRecord."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from mappings.case_model import (
    AssessmentRecord,
    CareTeamMemberRecord,
    CaseRecord,
    CheckInRecord,
    CodingRecord,
    GoalProgressRecord,
    GoalRecord,
    GoalTargetRecord,
    IdentifierRecord,
    InterventionRecord,
    NeedRecord,
    NoteRecord,
    PatientRecord,
    PerformerRecord,
    PersonRecord,
    RiskRecord,
    TransitionRecord,
)
from mappings.to_fhir.people import is_actor
from service.assessments.models import Assessment, Need
from service.auth.models import Practitioner
from service.cases.models import CareTeamMember, Case, CaseChild, Note, Transition
from service.checkins.models import CheckIn
from service.fhir_store.case_rows import CaseRows
from service.patients.models import Patient
from service.plans.models import Goal, Intervention

RowT = TypeVar("RowT", bound=CaseChild)


def _coding(value: dict[str, Any] | None) -> CodingRecord | None:
    return None if value is None else CodingRecord.model_validate(value)


def patient_record(patient: Patient) -> PatientRecord:
    return PatientRecord(
        id=patient.id,
        identifiers=tuple(
            IdentifierRecord(system=i.system, value=i.value) for i in patient.identifiers
        ),
        given_name=patient.given_name,
        family_name=patient.family_name,
        birth_date=patient.birth_date,
        gender=patient.gender,
        fhir_extras=patient.fhir_extras,
    )


def _need(row: Need) -> NeedRecord:
    return NeedRecord(
        id=row.id,
        domain=row.domain,
        description=row.description,
        severity=row.severity,
        status=row.status,
        code=_coding(row.code),
        assessment_id=row.assessment_id,
        recorded_at=row.recorded_at or row.created_at,
        fhir_extras=row.fhir_extras,
    )


def _assessment(row: Assessment, need_ids: tuple[str, ...]) -> AssessmentRecord:
    return AssessmentRecord(
        id=row.id,
        kind=row.kind,
        performed_at=row.performed_at,
        performed_by=row.performed_by,
        summary=row.summary,
        strengths=tuple(row.strengths),
        preferences=tuple(row.preferences),
        risks=tuple(
            RiskRecord(id=str(r.id), description=r.description, level=r.level) for r in row.risks
        ),
        need_ids=need_ids,
    )


def _goal(row: Goal) -> GoalRecord:
    target = row.target
    return GoalRecord(
        id=row.id,
        description=row.description,
        code=_coding(row.code),
        need_ids=tuple(row.need_ids),
        expressed_by=row.expressed_by,
        priority=row.priority,
        lifecycle_status=row.lifecycle_status,
        achievement_status=row.achievement_status,
        start_date=row.start_date,
        target=None
        if target is None
        else GoalTargetRecord(
            measure=_coding(row.target_measure),
            detail_quantity=row.target_detail_quantity,
            detail_unit=row.target_detail_unit,
            detail_text=row.target_detail_text,
            due_date=row.target_due_date,
        ),
        progress=tuple(
            GoalProgressRecord(
                id=p.id,
                recorded_at=p.recorded_at,
                recorded_by=p.recorded_by,
                achievement_status=p.achievement_status,
                note=p.note,
            )
            for p in row.progress
        ),
        fhir_extras=row.fhir_extras,
    )


def _intervention(row: Intervention) -> InterventionRecord:
    identifier = row.performer_identifier
    performer = (
        None
        if row.performer_kind is None or row.performer_name is None
        else PerformerRecord(
            kind=row.performer_kind,
            name=row.performer_name,
            identifier=None if identifier is None else IdentifierRecord.model_validate(identifier),
        )
    )
    return InterventionRecord(
        id=row.id,
        kind=row.kind,
        type=row.type,
        description=row.description,
        code=_coding(row.code),
        performer=performer,
        status=row.status,
        priority=row.priority,
        scheduled_start=row.scheduled_start,
        scheduled_end=row.scheduled_end,
        authored_at=row.authored_at or row.created_at,
        requested_by=row.requested_by,
        goal_ids=tuple(row.goal_ids),
        need_ids=tuple(row.need_ids),
        referral_outcome=row.referral_outcome,
        outcome_note=row.outcome_note,
        fhir_extras=row.fhir_extras,
    )


async def _children(
    session: AsyncSession, model: type[RowT], case_id: str, *options: Any
) -> Sequence[RowT]:
    statement = select(model).where(model.case_id == case_id).options(*options)
    return (await session.scalars(statement.order_by(model.created_at, model.id))).all()


async def _people(session: AsyncSession, named: set[str | None]) -> tuple[PersonRecord, ...]:
    """The professional identities of the actors a case names (none: no query)."""
    actors = sorted(value for value in named if value and is_actor(value))
    if not actors:
        return ()
    rows = await session.scalars(
        select(Practitioner).where(Practitioner.actor.in_(actors)).order_by(Practitioner.actor)
    )
    return tuple(
        PersonRecord(
            actor=r.actor, family_name=r.family_name, given_names=tuple(r.given_names), npi=r.npi
        )
        for r in rows
    )


async def load_case_rows(session: AsyncSession, case_id: str) -> CaseRows:
    """The case's rows as stored (the case re-read: another write may have changed it)."""
    case = (
        await session.scalars(
            select(Case)
            .where(Case.id == case_id)
            .options(selectinload(Case.patient).selectinload(Patient.identifiers))
            .execution_options(populate_existing=True)
        )
    ).one()
    check_ins = await _children(session, CheckIn, case_id, selectinload(CheckIn.goal_progress))
    return CaseRows(
        case=case,
        patient=case.patient,
        needs=await _children(session, Need, case_id),
        assessments=await _children(session, Assessment, case_id, selectinload(Assessment.risks)),
        goals=await _children(
            session, Goal, case_id, selectinload(Goal.needs), selectinload(Goal.progress)
        ),
        interventions=await _children(
            session,
            Intervention,
            case_id,
            selectinload(Intervention.goals),
            selectinload(Intervention.needs),
        ),
        check_ins=check_ins,
        team=await _children(session, CareTeamMember, case_id),
        transitions=await _children(session, Transition, case_id),
        notes=await _children(session, Note, case_id),
        check_in_progress={c.id: tuple(p.id for p in c.goal_progress) for c in check_ins},
    )


async def load_case_record(session: AsyncSession, case_id: str) -> CaseRecord:
    return await case_record_of(session, await load_case_rows(session, case_id))


async def case_record_of(session: AsyncSession, rows: CaseRows) -> CaseRecord:
    """The CaseRecord of the rows (read back, or held by the unit of work that made them)."""
    case, needs, check_ins = rows.case, rows.needs, rows.check_ins
    people = await _people(
        session,
        {
            case.manager,
            *(i.requested_by for i in rows.interventions),
            *(c.performed_by for c in check_ins),
        },
    )
    return CaseRecord(
        id=case.id,
        patient=patient_record(rows.patient),
        program=case.program,
        title=case.title,
        manager=case.manager,
        priority=case.priority,
        status=case.status,
        closure_reason=case.closure_reason,
        opened_at=case.opened_at,
        closed_at=case.closed_at,
        updated_at=case.updated_at,
        assessments=tuple(
            _assessment(a, tuple(n.id for n in needs if n.assessment_id == a.id))
            for a in rows.assessments
        ),
        needs=tuple(_need(n) for n in needs),
        goals=tuple(_goal(g) for g in rows.goals),
        interventions=tuple(_intervention(i) for i in rows.interventions),
        care_team=tuple(
            CareTeamMemberRecord(
                id=m.id, role=m.role, name=m.name, telecom=m.telecom, active=m.active
            )
            for m in rows.team
        ),
        check_ins=tuple(
            CheckInRecord(
                id=c.id,
                occurred_at=c.occurred_at,
                mode=c.mode,
                performed_by=c.performed_by,
                notes=c.notes,
                goal_progress_ids=rows.check_in_progress[c.id],
            )
            for c in check_ins
        ),
        transitions=tuple(
            TransitionRecord(
                id=t.id,
                kind=t.kind,
                from_setting=t.from_setting,
                to_setting=t.to_setting,
                planned_date=t.planned_date,
                actual_date=t.actual_date,
                status=t.status,
                follow_ups=tuple(t.follow_ups),
            )
            for t in rows.transitions
        ),
        notes=tuple(
            NoteRecord(id=n.id, author=n.author, text=n.text, created_at=n.created_at)
            for n in rows.notes
        ),
        people=people,
        fhir_extras=case.fhir_extras,
    )
