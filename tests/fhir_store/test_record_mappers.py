"""Each domain's row <-> record mapper (`service/<domain>/records.py`) carries every field both
ways. A row with every column set goes row -> record -> row -> record: the rows agree on every
column (read from the SQLAlchemy mapper), the records on every field (read from the pydantic
model), and no record field is left at its default. A column or a record field that a mapper
forgets fails here; one that is deliberately one-way is named in `NOT_IN_RECORD`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mappings.case_model import (
    CareTeamMemberRecord,
    CaseRecord,
    GoalRecord,
    InterventionRecord,
    NeedRecord,
    PatientRecord,
)
from mappings.vocabulary import (
    AdministrativeGender,
    AssessmentKind,
    CareSetting,
    CareTeamRole,
    CaseStatus,
    CheckInMode,
    ClosureReason,
    GoalAchievement,
    GoalExpressedBy,
    GoalLifecycle,
    GoalPriority,
    InterventionKind,
    InterventionStatus,
    InterventionType,
    NeedDomain,
    NeedStatus,
    PerformerKind,
    Priority,
    Program,
    ReferralOutcome,
    RiskLevel,
    Severity,
    TransitionKind,
    TransitionStatus,
)
from service.assessments import records as assessments
from service.assessments.models import Assessment, Need, Risk
from service.assessments.schemas import NeedCreate, NeedUpdate
from service.cases import records as cases
from service.cases.models import CareTeamMember, Case, Note, Transition
from service.cases.schemas import CareTeamMemberCreate, CareTeamMemberUpdate
from service.checkins import records as checkins
from service.checkins.models import CheckIn
from service.patients import records as patients
from service.patients.models import Patient, PatientIdentifier
from service.patients.schemas import PatientUpdate
from service.plans import records as plans
from service.plans.models import Goal, GoalProgress, Intervention
from service.plans.schemas import GoalCreate, GoalUpdate, InterventionCreate, InterventionUpdate

T0 = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
CODING = {"system": "http://snomed.info/sct", "code": "1234", "display": "A code"}
# Bookkeeping every versioned row has and no record carries (the FHIR version is the store's).
BOOKKEEPING = {"case_id", "created_at", "updated_at", "version"}
# Columns deliberately outside the record: kept by the row alone (reason in the comment).
NOT_IN_RECORD: dict[type[Any], set[str]] = {
    Patient: BOOKKEEPING,
    # The patient is its own record; a closure note has no FHIR element; the FHIR
    # lastUpdated is read from the row, never written from a received case.
    Case: BOOKKEEPING | {"patient_id", "closure_note"},
    Need: BOOKKEEPING,
    Assessment: BOOKKEEPING,
    Goal: BOOKKEEPING,
    # Linked from the check-in's side (`CheckInRecord.goal_progress_ids`).
    GoalProgress: {"goal_id", "check_in_id"},
    Intervention: BOOKKEEPING,
    CareTeamMember: BOOKKEEPING,
    Transition: BOOKKEEPING,
    Note: BOOKKEEPING - {"created_at"},  # a note's time is its creation
    CheckIn: BOOKKEEPING,
}


RowT = TypeVar("RowT")


def _bookkeeping(row: RowT) -> RowT:
    for column, value in {
        "case_id": "case-1",
        "created_at": T0,
        "updated_at": T0,
        "version": 3,
    }.items():
        if hasattr(row, column):
            setattr(row, column, value)
    return row


def _columns(model: type[Any]) -> list[str]:
    return [c.key for c in sa.inspect(model).column_attrs]


def _mapped_columns(model: type[Any]) -> list[str]:
    return [c for c in _columns(model) if c not in NOT_IN_RECORD[model]]


def assert_every_column_set(row: Any) -> None:
    """The sample sets every column a mapper must carry: a new column fails here until the
    sample (and so the mapper) has it."""
    unset = [c for c in _mapped_columns(type(row)) if getattr(row, c) is None]
    assert not unset, f"the sample {type(row).__name__} leaves {unset} empty"


def assert_every_field_set(record: BaseModel) -> None:
    """No record field is left at its default (or empty): a record field no mapper fills
    fails here."""
    for name, field in type(record).model_fields.items():
        value = getattr(record, name)
        default = None if field.default is PydanticUndefined else field.default
        if field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        assert value not in (None, (), {}), f"{type(record).__name__}.{name} is empty"
        assert value != default, f"{type(record).__name__}.{name} is at its default"


def assert_same_columns(original: Any, copy: Any) -> None:
    for column in _mapped_columns(type(original)):
        assert getattr(copy, column) == getattr(original, column), column


def _need() -> Need:
    return _bookkeeping(
        Need(
            id="need-1",
            assessment_id="assessment-1",
            domain=NeedDomain.housing,
            description="Unstable housing",
            severity=Severity.severe,
            status=NeedStatus.resolved,
            code=CODING,
            recorded_at=T0 - dt.timedelta(days=1),
            fhir_extras={"Condition": {"note": [{"text": "kept"}]}},
        )
    )


def _goal(need: Need) -> Goal:
    return _bookkeeping(
        Goal(
            id="goal-1",
            description="Stable housing",
            code=CODING,
            expressed_by=GoalExpressedBy.caregiver,
            priority=GoalPriority.high,
            lifecycle_status=GoalLifecycle.active,
            achievement_status=GoalAchievement.improving,
            start_date=dt.date(2026, 1, 2),
            target_measure=CODING,
            target_detail_quantity=Decimal("12.5"),
            target_detail_unit="kg",
            target_detail_text="or better",
            target_due_date=dt.date(2026, 6, 1),
            fhir_extras={"Goal": {"extension": []}},
            needs=[need],
            progress=[
                GoalProgress(
                    id="progress-1",
                    goal_id="goal-1",
                    check_in_id="checkin-1",
                    recorded_at=T0,
                    recorded_by="user:ann",
                    achievement_status=GoalAchievement.improving,
                    note="Viewed two flats",
                )
            ],
        )
    )


def _intervention(goal: Goal, need: Need) -> Intervention:
    return _bookkeeping(
        Intervention(
            id="intervention-1",
            kind=InterventionKind.referral,
            type=InterventionType.housing_assistance,
            description="Housing referral",
            code=CODING,
            performer_kind=PerformerKind.practitioner,
            performer_name="Dr Who",
            performer_identifier={"system": "http://hl7.org/fhir/sid/us-npi", "value": "1"},
            status=InterventionStatus.completed,
            priority=Priority.urgent,
            scheduled_start=T0,
            scheduled_end=T0 + dt.timedelta(days=2),
            authored_at=T0 - dt.timedelta(days=3),
            requested_by="user:ann",
            referral_outcome=ReferralOutcome.service_provided,
            outcome_note="Placed",
            fhir_extras={"ServiceRequest": {"note": []}},
            goals=[goal],
            needs=[need],
        )
    )


def test_patient_round_trip() -> None:
    row = _bookkeeping(
        Patient(
            id="patient-1",
            given_name="Ann",
            family_name="Lee",
            birth_date=dt.date(1950, 1, 2),
            gender=AdministrativeGender.female,
            fhir_extras={"Patient": {"telecom": []}},
            identifiers=[PatientIdentifier(system="urn:mrn", value="42")],
        )
    )
    assert_every_column_set(row)
    record = patients.patient_record(row)
    assert_every_field_set(record)
    copy = patients.new_patient(record)
    assert_same_columns(row, copy)
    assert patients.patient_record(copy) == record


def test_case_round_trip() -> None:
    row = _bookkeeping(
        Case(
            id="case-1",
            patient_id="patient-1",
            program=Program.social_work,
            title="Housing",
            manager="user:ann",
            priority=Priority.urgent,
            status=CaseStatus.closed,
            closure_reason=ClosureReason.goals_met,
            closure_note="Done",
            opened_at=T0 - dt.timedelta(days=30),
            closed_at=T0,
            fhir_extras={"CarePlan": {"note": []}},
        )
    )
    assert_every_column_set(row)
    patient = PatientRecord(id="patient-1")
    fields = cases.case_fields(row)
    # Everything else a CaseRecord holds is its patient and its records.
    outside = {
        "patient",
        "people",
        *(n for n, f in CaseRecord.model_fields.items() if f.default == ()),
    }
    assert set(fields) == set(CaseRecord.model_fields) - outside
    record = CaseRecord(**fields, patient=patient)
    copy = cases.new_case(record, "patient-1")
    assert_same_columns(row, copy)
    copy.updated_at = row.updated_at  # bookkeeping: the store's, not the sender's
    assert CaseRecord(**cases.case_fields(copy), patient=patient) == record


def test_need_and_assessment_round_trip() -> None:
    need = _need()
    assert_every_column_set(need)
    record = assessments.need_record(need)
    assert_every_field_set(record)
    copy = assessments.new_need(record, "case-1", need.assessment_id)
    assert_same_columns(need, copy)
    assert assessments.need_record(_bookkeeping(copy)) == record

    row = _bookkeeping(
        Assessment(
            id="assessment-1",
            kind=AssessmentKind.reassessment,
            performed_at=T0,
            performed_by="user:ann",
            summary="Summary",
            strengths=["family"],
            preferences=["phone"],
            risks=[
                Risk(id=7, assessment_id="assessment-1", description="Falls", level=RiskLevel.high)
            ],
        )
    )
    assert_every_column_set(row)
    assessment = assessments.assessment_record(row, ("need-1",))
    assert_every_field_set(assessment)
    copy_assessment = assessments.new_assessment(assessment, "case-1")
    assert_same_columns(row, copy_assessment)
    # A risk's id is the database's (a sequence), given at the flush.
    for risk in copy_assessment.risks:
        risk.id = 7
    for original, copied in zip(row.risks, copy_assessment.risks, strict=True):
        assert [getattr(copied, c) for c in ("description", "level")] == [
            getattr(original, c) for c in ("description", "level")
        ]
    assert assessments.assessment_record(copy_assessment, ("need-1",)) == assessment


def test_goal_and_intervention_round_trip() -> None:
    need = _need()
    goal = _goal(need)
    assert_every_column_set(goal)
    assert_every_column_set(goal.progress[0])
    record = plans.goal_record(goal)
    assert_every_field_set(record)
    assert_every_field_set(record.target)  # type: ignore[arg-type]
    assert_every_field_set(record.progress[0])
    copy = plans.new_goal(record, "case-1", [need], {"progress-1": "checkin-1"})
    assert_same_columns(goal, copy)
    assert [
        {c: getattr(p, c) for c in _columns(GoalProgress) if c != "goal_id"} for p in copy.progress
    ] == [
        {c: getattr(p, c) for c in _columns(GoalProgress) if c != "goal_id"} for p in goal.progress
    ]
    assert plans.goal_record(_bookkeeping(copy)) == record

    row = _intervention(goal, need)
    assert_every_column_set(row)
    intervention = plans.intervention_record(row)
    assert_every_field_set(intervention)
    assert_every_field_set(intervention.performer)  # type: ignore[arg-type]
    copy_row = plans.new_intervention(intervention, "case-1", [goal], [need])
    assert_same_columns(row, copy_row)
    assert plans.intervention_record(_bookkeeping(copy_row)) == intervention


def test_team_transition_note_and_check_in_round_trip() -> None:
    samples: list[tuple[Any, Any, Any]] = [
        (
            CareTeamMember(
                id="member-1", role=CareTeamRole.nurse, name="Bo", telecom="tel:1", active=False
            ),
            cases.member_record,
            cases.new_member,
        ),
        (
            Transition(
                id="transition-1",
                kind=TransitionKind.admission,
                from_setting=CareSetting.home,
                to_setting=CareSetting.acute_hospital,
                planned_date=dt.date(2026, 2, 1),
                actual_date=dt.date(2026, 2, 2),
                status=TransitionStatus.completed,
                follow_ups=["call"],
            ),
            cases.transition_record,
            cases.new_transition,
        ),
        (Note(id="note-1", author="user:ann", text="Met"), cases.note_record, cases.new_note),
    ]
    for row, to_record, new_row in samples:
        _bookkeeping(row)
        assert_every_column_set(row)
        record = to_record(row)
        assert_every_field_set(record)
        copy = new_row(record, "case-1")
        assert_same_columns(row, copy)
        assert to_record(_bookkeeping(copy)) == record

    progress = GoalProgress(id="progress-1", recorded_at=T0, note="n")
    check_in = _bookkeeping(
        CheckIn(
            id="checkin-1",
            occurred_at=T0,
            mode=CheckInMode.video,
            performed_by="user:ann",
            notes="Fine",
            goal_progress=[progress],
        )
    )
    assert_every_column_set(check_in)
    record = checkins.check_in_record(check_in)
    assert_every_field_set(record)
    copy = checkins.new_check_in(record, "case-1")
    assert_same_columns(check_in, copy)
    copy.goal_progress = [progress]  # linked from the progress' side (`plans.new_goal`)
    assert checkins.check_in_record(_bookkeeping(copy)) == record


@pytest.mark.parametrize(
    ("shape", "record"),
    [
        (GoalCreate, GoalRecord),
        (GoalUpdate, GoalRecord),
        (InterventionCreate, InterventionRecord),
        (InterventionUpdate, InterventionRecord),
        (NeedCreate, NeedRecord),
        (NeedUpdate, NeedRecord),
        (CareTeamMemberCreate, CareTeamMemberRecord),
        (CareTeamMemberUpdate, CareTeamMemberRecord),
        (PatientUpdate, PatientRecord),
    ],
)
def test_a_received_record_fills_every_field_of_the_api_shape(
    shape: type[BaseModel], record: type[BaseModel]
) -> None:
    """A received record is applied as the `/api` shape (`record_fields.as_request`): a field
    `/api` gains and the record lacks would never be set from FHIR; it fails here instead."""
    assert set(shape.model_fields) <= set(record.model_fields)
