"""A case received as FHIR (mapped to a CaseRecord by `mappings.from_fhir`) stored as a new case:
the inverse of `service.fhir_store.case_record`. Elements the case model has no place for
travel in `fhir_extras`, so the re-projection gives them back."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from mappings.case_model import CaseRecord, PatientRecord
from mappings.vocabulary import AssessmentKind, CaseStatus
from service.assessments.models import Assessment, Need
from service.assessments.records import new_assessment, new_need
from service.assessments.service import check_assessment_kind
from service.auth.deps import Actor
from service.cases.history import record_event
from service.cases.models import Case, Transition
from service.cases.records import new_case, new_member, new_note, new_transition
from service.cases.service import check_closed_state, check_nothing_left_open
from service.cases.team_and_transitions import check_transition
from service.checkins.records import new_check_in
from service.db.unit_of_work import UnitOfWork
from service.errors import RuleViolation, UnprocessableEntity
from service.fhir_store.case_rows import created_case_rows
from service.patients.models import Patient
from service.patients.records import new_patient
from service.patients.repository import get_patient, identifier_owner
from service.plans.models import Goal, Intervention
from service.plans.records import new_goal, new_intervention
from service.plans.service import check_goal_state, check_intervention, check_links


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


def check_received_case(
    case: Case,
    assessments: Iterable[Assessment],
    goals: Iterable[Goal],
    interventions: Iterable[Intervention],
    transitions: Iterable[Transition],
) -> None:
    """The rules `/api` holds each record to, through the same functions, on a received case's
    new rows (a `RuleViolation` names the broken rule). The lifecycle's order of statuses is not
    one of them: a received case arrives at its sender's status, not moved through ours."""
    with _about("CarePlan", case.id):
        check_closed_state(case)
    initial_count = 0
    for assessment in sorted(assessments, key=lambda a: a.performed_at):
        with _about("CarePlan", case.id):  # assessments travel in the CarePlan
            check_assessment_kind(assessment.kind, initial_count)
        if assessment.kind is AssessmentKind.initial:
            initial_count += 1
    for goal in goals:
        with _about("Goal", goal.id):
            check_goal_state(case, goal)
    for intervention in interventions:
        with _about("ServiceRequest", intervention.id):
            check_intervention(intervention)
    for transition in transitions:
        with _about("CarePlan", case.id):  # transitions travel in the CarePlan's activities
            check_transition(transition)


@contextmanager
def _about(resource_type: str, resource_id: str) -> Iterator[None]:
    """A broken rule names the received resource that broke it (`resource` in its extras)."""
    try:
        yield
    except RuleViolation as error:
        error.extra.setdefault("resource", f"{resource_type}/{resource_id}")
        raise


async def store_imported_case(
    session: UnitOfWork, actor: Actor, record: CaseRecord, *, under_api_rules: bool
) -> Case:
    """Store a received case and its records as they are (the sender's plan is the truth).

    `under_api_rules`: the case must also hold every rule `/api` holds its records to
    (`check_received_case`), or nothing is stored: a case a client sends to `/fhir`. A case
    opened from an EHR's records (`pull.case_opening`) records the EHR's facts at intake for a
    person to review instead."""
    patient = await resolve_patient(session, actor, record.patient)
    case = new_case(record, patient.id)
    session.add(case)
    await session.flush()
    assessments = [new_assessment(a, case.id) for a in record.assessments]
    session.add_all(assessments)
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
    interventions = [
        new_intervention(
            i,
            case.id,
            [goals[g] for g in i.goal_ids if g in goals],
            [needs[n] for n in i.need_ids if n in needs],
        )
        for i in record.interventions
    ]
    session.add_all(interventions)
    team = [new_member(m, case.id) for m in record.care_team]
    session.add_all(team)
    check_ins = [new_check_in(c, case.id) for c in record.check_ins]
    session.add_all(check_ins)
    transitions = [new_transition(t, case.id) for t in record.transitions]
    session.add_all(transitions)
    notes = [new_note(n, case.id) for n in record.notes]
    session.add_all(notes)
    if under_api_rules:
        linked_needs = {n for g in record.goals for n in g.need_ids}
        linked_needs |= {n for i in record.interventions for n in i.need_ids}
        check_links(Need, linked_needs - set(needs))
        check_links(Goal, {g for i in record.interventions for g in i.goal_ids} - set(goals))
        check_received_case(case, assessments, goals.values(), interventions, transitions)
    await session.flush()
    if under_api_rules and case.status is CaseStatus.closed:
        await check_nothing_left_open(session, case)
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
