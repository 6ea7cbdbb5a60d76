"""A case received as FHIR (mapped to a CaseRecord by `mappings.from_fhir`) stored as a new case:
the inverse of `service.fhir_store.case_record`. Elements the case model has no place for
travel in `fhir_extras`, so the re-projection gives them back."""

from __future__ import annotations

from typing import Any

from mappings.case_model import CaseRecord, CodingRecord, IdentifierRecord, PatientRecord
from service.assessments.models import Assessment, Need, Risk
from service.auth.deps import Actor
from service.cases.history import record_event
from service.cases.models import CareTeamMember, Case, Note, Transition
from service.checkins.models import CheckIn
from service.db.unit_of_work import UnitOfWork
from service.errors import UnprocessableEntity
from service.fhir_store.case_rows import created_case_rows
from service.patients.models import Patient, PatientIdentifier
from service.patients.repository import get_patient, identifier_owner
from service.plans.models import Goal, GoalProgress, Intervention


def _coding(value: CodingRecord | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(exclude_none=True)


def _identifier(value: IdentifierRecord | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump()


async def resolve_patient(session: UnitOfWork, actor: Actor, record: PatientRecord) -> Patient:
    """The patient a received case is about: ours by id, ours by an identifier, or new."""
    existing = await get_patient(session, record.id)
    if existing is not None:
        return existing
    for identifier in record.identifiers:
        owner = await identifier_owner(session, identifier.system, identifier.value)
        if owner is not None:
            found = await get_patient(session, owner)
            assert found is not None
            return found
    if not record.identifiers and record.family_name is None:
        raise UnprocessableEntity(
            f"Patient/{record.id} is not known here, and the request does not include it",
            extra={"expression": ["CarePlan.subject"]},
        )
    patient = Patient(
        id=record.id,
        given_name=record.given_name,
        family_name=record.family_name,
        birth_date=record.birth_date,
        gender=record.gender,
        fhir_extras=record.fhir_extras,
        identifiers=[PatientIdentifier(system=i.system, value=i.value) for i in record.identifiers],
    )
    session.add(patient)
    await session.flush()
    session.changes.note_patient(patient.id, actor.id)
    return patient


async def store_imported_case(session: UnitOfWork, actor: Actor, record: CaseRecord) -> Case:
    """Store a received case and its records as they are (the sender's plan is the truth)."""
    patient = await resolve_patient(session, actor, record.patient)
    case = Case(
        id=record.id,
        patient_id=patient.id,
        program=record.program,
        title=record.title,
        manager=record.manager,
        priority=record.priority,
        status=record.status,
        closure_reason=record.closure_reason,
        opened_at=record.opened_at,
        closed_at=record.closed_at,
        fhir_extras=record.fhir_extras,
    )
    session.add(case)
    await session.flush()
    assessment_of = {n: a.id for a in record.assessments for n in a.need_ids}
    assessments = [
        Assessment(
            id=a.id,
            case_id=case.id,
            kind=a.kind,
            performed_at=a.performed_at,
            performed_by=a.performed_by,
            summary=a.summary,
            strengths=list(a.strengths),
            preferences=list(a.preferences),
            risks=[Risk(description=r.description, level=r.level) for r in a.risks],
        )
        for a in record.assessments
    ]
    session.add_all(assessments)
    await session.flush()
    needs = {
        n.id: Need(
            id=n.id,
            case_id=case.id,
            assessment_id=assessment_of.get(n.id),
            domain=n.domain,
            description=n.description,
            severity=n.severity,
            status=n.status,
            code=_coding(n.code),
            recorded_at=n.recorded_at,
            fhir_extras=n.fhir_extras,
        )
        for n in record.needs
    }
    session.add_all(needs.values())
    check_in_of = {p: c.id for c in record.check_ins for p in c.goal_progress_ids}
    goals = {
        g.id: Goal(
            id=g.id,
            case_id=case.id,
            description=g.description,
            code=_coding(g.code),
            expressed_by=g.expressed_by,
            priority=g.priority,
            lifecycle_status=g.lifecycle_status,
            achievement_status=g.achievement_status,
            start_date=g.start_date,
            target_measure=_coding(g.target.measure) if g.target else None,
            target_detail_quantity=g.target.detail_quantity if g.target else None,
            target_detail_unit=g.target.detail_unit if g.target else None,
            target_detail_text=g.target.detail_text if g.target else None,
            target_due_date=g.target.due_date if g.target else None,
            fhir_extras=g.fhir_extras,
            needs=[needs[n] for n in g.need_ids if n in needs],
            progress=[
                GoalProgress(
                    id=p.id,
                    check_in_id=check_in_of.get(p.id),
                    recorded_at=p.recorded_at,
                    recorded_by=p.recorded_by,
                    achievement_status=p.achievement_status,
                    note=p.note,
                )
                for p in g.progress
            ],
        )
        for g in record.goals
    }
    session.add_all(goals.values())
    interventions = [
        Intervention(
            id=i.id,
            case_id=case.id,
            kind=i.kind,
            type=i.type,
            description=i.description,
            code=_coding(i.code),
            performer_kind=i.performer.kind if i.performer else None,
            performer_name=i.performer.name if i.performer else None,
            performer_identifier=_identifier(i.performer.identifier) if i.performer else None,
            status=i.status,
            priority=i.priority,
            scheduled_start=i.scheduled_start,
            scheduled_end=i.scheduled_end,
            authored_at=i.authored_at,
            requested_by=i.requested_by,
            referral_outcome=i.referral_outcome,
            outcome_note=i.outcome_note,
            fhir_extras=i.fhir_extras,
            goals=[goals[g] for g in i.goal_ids if g in goals],
            needs=[needs[n] for n in i.need_ids if n in needs],
        )
        for i in record.interventions
    ]
    session.add_all(interventions)
    team = [
        CareTeamMember(
            id=m.id, case_id=case.id, role=m.role, name=m.name, telecom=m.telecom, active=m.active
        )
        for m in record.care_team
    ]
    session.add_all(team)
    check_ins = [
        CheckIn(
            id=c.id,
            case_id=case.id,
            occurred_at=c.occurred_at,
            mode=c.mode,
            performed_by=c.performed_by,
            notes=c.notes,
        )
        for c in record.check_ins
    ]
    session.add_all(check_ins)
    transitions = [
        Transition(
            id=t.id,
            case_id=case.id,
            kind=t.kind,
            from_setting=t.from_setting,
            to_setting=t.to_setting,
            planned_date=t.planned_date,
            actual_date=t.actual_date,
            status=t.status,
            follow_ups=list(t.follow_ups),
        )
        for t in record.transitions
    ]
    session.add_all(transitions)
    notes = [
        Note(id=n.id, case_id=case.id, author=n.author, text=n.text, created_at=n.created_at)
        for n in record.notes
    ]
    session.add_all(notes)
    await session.flush()
    # Every row of the new case is at hand: its projection reads none of them back.
    session.changes.note_created_case(
        created_case_rows(
            case,
            patient,
            needs=needs.values(),
            assessments=assessments,
            goals=goals.values(),
            interventions=interventions,
            check_ins=check_ins,
            team=team,
            transitions=transitions,
            notes=notes,
        )
    )
    record_event(
        session,
        case_id=case.id,
        actor=actor,
        action="imported",
        entity="case",
        entity_id=case.id,
        changes={
            "needs": [None, len(record.needs)],
            "goals": [None, len(record.goals)],
            "interventions": [None, len(record.interventions)],
        },
    )
    return case
