"""A case as the mappings see it: its rows, read in a handful of queries, as a CaseRecord."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from mappings.case_model import CaseRecord, PersonRecord
from mappings.to_fhir.people import is_actor
from service.assessments.models import Assessment, Need
from service.assessments.records import assessment_record, need_record
from service.auth.models import Practitioner
from service.cases.models import CareTeamMember, Case, CaseChild, Note, Transition
from service.cases.records import case_fields, member_record, note_record, transition_record
from service.checkins.models import CheckIn
from service.checkins.records import check_in_record
from service.fhir_store.case_rows import CaseRows
from service.patients.models import Patient
from service.patients.records import patient_record
from service.plans.models import Goal, Intervention
from service.plans.records import goal_record, intervention_record

RowT = TypeVar("RowT", bound=CaseChild)


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
        **case_fields(case),
        patient=patient_record(rows.patient),
        assessments=tuple(
            assessment_record(a, tuple(n.id for n in needs if n.assessment_id == a.id))
            for a in rows.assessments
        ),
        needs=tuple(need_record(n) for n in needs),
        goals=tuple(goal_record(g) for g in rows.goals),
        interventions=tuple(intervention_record(i) for i in rows.interventions),
        care_team=tuple(member_record(m) for m in rows.team),
        check_ins=tuple(check_in_record(c, rows.check_in_progress[c.id]) for c in check_ins),
        transitions=tuple(transition_record(t) for t in rows.transitions),
        notes=tuple(note_record(n) for n in rows.notes),
        people=people,
    )
