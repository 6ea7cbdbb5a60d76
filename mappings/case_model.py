"""The case as the mappings see it: plain, immutable records with no database behind them.

`service/` builds a `CaseRecord` from its tables and hands it to the projection; the inverse
mappings (FHIR -> case) return the same records, which `service/` then stores. Nothing in
this module knows about SQLAlchemy, HTTP or FHIR.

Every record that becomes a FHIR resource has `fhir_extras`: the parts of an incoming
resource that the case model has no place for (unknown extensions, extra identifiers,
codings we do not map, ...). They are kept verbatim so that a re-export gives them back.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CodingRecord(Record):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class IdentifierRecord(Record):
    system: str
    value: str


class PatientRecord(Record):
    id: str
    identifiers: tuple[IdentifierRecord, ...] = ()
    given_name: str | None = None
    family_name: str | None = None
    birth_date: dt.date | None = None
    gender: AdministrativeGender | None = None
    fhir_extras: dict[str, Any] = Field(default_factory=dict)


class NeedRecord(Record):
    """An assessed need or problem; it becomes a health-concern Condition."""

    id: str
    domain: NeedDomain
    description: str
    severity: Severity | None = None
    status: NeedStatus = NeedStatus.active
    code: CodingRecord | None = None
    assessment_id: str | None = None
    recorded_at: dt.datetime | None = None
    fhir_extras: dict[str, Any] = Field(default_factory=dict)


class RiskRecord(Record):
    id: str
    description: str
    level: RiskLevel


class AssessmentRecord(Record):
    id: str
    kind: AssessmentKind
    performed_at: dt.datetime
    performed_by: str | None = None
    summary: str | None = None
    strengths: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    risks: tuple[RiskRecord, ...] = ()
    need_ids: tuple[str, ...] = ()


class GoalProgressRecord(Record):
    id: str
    recorded_at: dt.datetime
    recorded_by: str | None = None
    achievement_status: GoalAchievement | None = None
    note: str


QUANTITY_INTEGER_DIGITS = 12
QUANTITY_FRACTION_DIGITS = 6
"""A target quantity the case holds (the column is NUMERIC(18, 6)); a received value beyond
it is not mapped, and the received target is kept verbatim instead."""


def quantity_fits(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return (
        value.is_finite()
        and isinstance(exponent, int)
        and -exponent <= QUANTITY_FRACTION_DIGITS
        and abs(value) < Decimal(10) ** QUANTITY_INTEGER_DIGITS
    )


class GoalTargetRecord(Record):
    measure: CodingRecord | None = None
    detail_quantity: Decimal | None = None
    detail_unit: str | None = None
    detail_text: str | None = None
    due_date: dt.date | None = None


class GoalRecord(Record):
    id: str
    description: str
    code: CodingRecord | None = None
    need_ids: tuple[str, ...] = ()
    expressed_by: GoalExpressedBy | None = None
    priority: GoalPriority | None = None
    lifecycle_status: GoalLifecycle = GoalLifecycle.proposed
    achievement_status: GoalAchievement | None = None
    start_date: dt.date | None = None
    target: GoalTargetRecord | None = None
    progress: tuple[GoalProgressRecord, ...] = ()
    fhir_extras: dict[str, Any] = Field(default_factory=dict)


class PerformerRecord(Record):
    kind: PerformerKind
    name: str
    identifier: IdentifierRecord | None = None


class InterventionRecord(Record):
    """A service or referral; it becomes a ServiceRequest."""

    id: str
    kind: InterventionKind
    type: InterventionType
    description: str | None = None
    code: CodingRecord | None = None
    performer: PerformerRecord | None = None
    status: InterventionStatus = InterventionStatus.draft
    priority: Priority = Priority.routine
    scheduled_start: dt.datetime | None = None
    scheduled_end: dt.datetime | None = None
    authored_at: dt.datetime | None = None
    requested_by: str | None = None
    goal_ids: tuple[str, ...] = ()
    need_ids: tuple[str, ...] = ()
    referral_outcome: ReferralOutcome | None = None
    outcome_note: str | None = None
    fhir_extras: dict[str, Any] = Field(default_factory=dict)


class CareTeamMemberRecord(Record):
    id: str
    role: CareTeamRole
    name: str
    telecom: str | None = None
    active: bool = True


class CheckInRecord(Record):
    id: str
    occurred_at: dt.datetime
    mode: CheckInMode
    performed_by: str | None = None
    notes: str | None = None
    goal_progress_ids: tuple[str, ...] = ()


class TransitionRecord(Record):
    id: str
    kind: TransitionKind
    from_setting: CareSetting
    to_setting: CareSetting
    planned_date: dt.date | None = None
    actual_date: dt.date | None = None
    status: TransitionStatus = TransitionStatus.planned
    follow_ups: tuple[str, ...] = ()


class NoteRecord(Record):
    id: str
    author: str | None = None
    text: str
    created_at: dt.datetime


class PersonRecord(Record):
    """The professional identity of someone who acts in the service (an OIDC user or an API
    key), as an admin set it; it becomes a US Core Practitioner."""

    actor: str
    """Who acts, as changes record it: `user:<sub>` or `apikey:<name>`."""
    family_name: str
    given_names: tuple[str, ...] = ()
    npi: str | None = None


class CaseRecord(Record):
    """One episode of case management, complete enough to project to FHIR."""

    id: str
    patient: PatientRecord
    program: Program
    title: str | None = None
    manager: str | None = None
    priority: Priority = Priority.routine
    status: CaseStatus = CaseStatus.referral
    closure_reason: ClosureReason | None = None
    opened_at: dt.datetime
    closed_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    assessments: tuple[AssessmentRecord, ...] = ()
    needs: tuple[NeedRecord, ...] = ()
    goals: tuple[GoalRecord, ...] = ()
    interventions: tuple[InterventionRecord, ...] = ()
    care_team: tuple[CareTeamMemberRecord, ...] = ()
    check_ins: tuple[CheckInRecord, ...] = ()
    transitions: tuple[TransitionRecord, ...] = ()
    notes: tuple[NoteRecord, ...] = ()
    people: tuple[PersonRecord, ...] = ()
    """The identities of the actors the case names (manager, requesters, check-in performers)
    that have one; an actor without one is the service's Organization."""
    fhir_extras: dict[str, Any] = Field(default_factory=dict)
