from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from mappings.vocabulary import (
    GoalAchievement,
    GoalExpressedBy,
    GoalLifecycle,
    GoalPriority,
    InterventionKind,
    InterventionStatus,
    InterventionType,
    PerformerKind,
    Priority,
    ReferralOutcome,
)
from service.api.schemas import CodingIn, RequestBody, ShortText, StoredRecord, Text
from service.patients.schemas import IdentifierIn

Ids = list[str]


class GoalTarget(RequestBody):
    measure: CodingIn | None = None
    detail_quantity: Decimal | None = None
    detail_unit: ShortText | None = None
    detail_text: Text | None = None
    due_date: dt.date | None = None


class GoalCreate(RequestBody):
    description: Text
    code: CodingIn | None = None
    need_ids: Ids = Field(default_factory=list, max_length=50)
    expressed_by: GoalExpressedBy | None = None
    priority: GoalPriority | None = None
    lifecycle_status: GoalLifecycle = GoalLifecycle.proposed
    achievement_status: GoalAchievement | None = None
    start_date: dt.date | None = None
    target: GoalTarget | None = None


class GoalUpdate(RequestBody):
    description: Text | None = None
    code: CodingIn | None = None
    need_ids: Ids | None = Field(None, max_length=50)
    expressed_by: GoalExpressedBy | None = None
    priority: GoalPriority | None = None
    lifecycle_status: GoalLifecycle | None = None
    achievement_status: GoalAchievement | None = None
    start_date: dt.date | None = None
    target: GoalTarget | None = None


class GoalProgressCreate(RequestBody):
    note: Text
    achievement_status: GoalAchievement | None = None


class GoalProgressOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    check_in_id: str | None
    recorded_at: dt.datetime
    recorded_by: str | None
    achievement_status: GoalAchievement | None
    note: str


class GoalOut(StoredRecord):
    case_id: str
    description: str
    code: dict[str, str] | None
    need_ids: Ids
    expressed_by: GoalExpressedBy | None
    priority: GoalPriority | None
    lifecycle_status: GoalLifecycle
    achievement_status: GoalAchievement | None
    start_date: dt.date | None
    target: GoalTarget | None
    progress: list[GoalProgressOut]


class Performer(RequestBody):
    kind: PerformerKind
    name: ShortText
    identifier: IdentifierIn | None = None


class InterventionCreate(RequestBody):
    kind: InterventionKind
    type: InterventionType
    description: Text | None = None
    code: CodingIn | None = None
    performer: Performer | None = None
    status: InterventionStatus = InterventionStatus.draft
    priority: Priority = Priority.routine
    scheduled_start: dt.datetime | None = None
    scheduled_end: dt.datetime | None = None
    goal_ids: Ids = Field(default_factory=list, max_length=50)
    need_ids: Ids = Field(default_factory=list, max_length=50)
    referral_outcome: ReferralOutcome | None = None
    outcome_note: Text | None = None


class InterventionUpdate(RequestBody):
    description: Text | None = None
    code: CodingIn | None = None
    performer: Performer | None = None
    status: InterventionStatus | None = None
    priority: Priority | None = None
    scheduled_start: dt.datetime | None = None
    scheduled_end: dt.datetime | None = None
    goal_ids: Ids | None = Field(None, max_length=50)
    need_ids: Ids | None = Field(None, max_length=50)
    referral_outcome: ReferralOutcome | None = None
    outcome_note: Text | None = None


class InterventionOut(StoredRecord):
    case_id: str
    kind: InterventionKind
    type: InterventionType
    description: str | None
    code: dict[str, str] | None
    performer: Performer | None
    status: InterventionStatus
    priority: Priority
    scheduled_start: dt.datetime | None
    scheduled_end: dt.datetime | None
    requested_by: str | None
    goal_ids: Ids
    need_ids: Ids
    referral_outcome: ReferralOutcome | None
    outcome_note: str | None
