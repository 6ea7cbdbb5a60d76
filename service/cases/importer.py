"""A case received as FHIR (mapped to a CaseRecord by `mappings.from_fhir`) stored as a new case:
the inverse of `service.fhir_store.case_record`. Elements the case model has no place for
travel in `fhir_extras`, so the re-projection gives them back."""

from __future__ import annotations

from mappings.case_model import CaseRecord, PatientRecord
from service.assessments.records import new_assessment, new_need
from service.auth.deps import Actor
from service.cases.history import record_event
from service.cases.models import Case
from service.cases.records import new_case, new_member, new_note, new_transition
from service.checkins.records import new_check_in
from service.db.unit_of_work import UnitOfWork
from service.errors import UnprocessableEntity
from service.patients.models import Patient
from service.patients.records import new_patient
from service.patients.repository import get_patient, identifier_owner
from service.plans.records import new_goal, new_intervention


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
    patient = new_patient(record)
    session.add(patient)
    await session.flush()
    session.changes.note_patient(patient.id, actor.id)
    return patient


async def store_imported_case(session: UnitOfWork, actor: Actor, record: CaseRecord) -> Case:
    """Store a received case and its records as they are (the sender's plan is the truth)."""
    patient = await resolve_patient(session, actor, record.patient)
    case = new_case(record, patient.id)
    session.add(case)
    await session.flush()
    session.add_all(new_assessment(a, case.id) for a in record.assessments)
    await session.flush()
    assessment_of = {n: a.id for a in record.assessments for n in a.need_ids}
    needs = {n.id: new_need(n, case.id, assessment_of.get(n.id)) for n in record.needs}
    session.add_all(needs.values())
    check_in_of = {p: c.id for c in record.check_ins for p in c.goal_progress_ids}
    goals = {
        g.id: new_goal(g, case.id, [needs[n] for n in g.need_ids if n in needs], check_in_of)
        for g in record.goals
    }
    session.add_all(goals.values())
    session.add_all(
        new_intervention(
            i,
            case.id,
            [goals[g] for g in i.goal_ids if g in goals],
            [needs[n] for n in i.need_ids if n in needs],
        )
        for i in record.interventions
    )
    session.add_all(new_member(m, case.id) for m in record.care_team)
    session.add_all(new_check_in(c, case.id) for c in record.check_ins)
    session.add_all(new_transition(t, case.id) for t in record.transitions)
    session.add_all(new_note(n, case.id) for n in record.notes)
    await session.flush()
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
