from __future__ import annotations

import datetime as dt

from pydantic import Field

from mappings.vocabulary import CheckInMode, GoalAchievement
from service.api.schemas import RequestBody, StoredRecord, Text
from service.plans.schemas import GoalProgressOut


class GoalProgressIn(RequestBody):
    goal_id: str
    note: Text
    achievement_status: GoalAchievement | None = None


class CheckInCreate(RequestBody):
    occurred_at: dt.datetime | None = None
    mode: CheckInMode
    notes: Text | None = None
    goal_progress: list[GoalProgressIn] = Field(default_factory=list, max_length=50)


class CheckInUpdate(RequestBody):
    occurred_at: dt.datetime | None = None
    mode: CheckInMode | None = None
    notes: Text | None = None


class CheckInOut(StoredRecord):
    case_id: str
    occurred_at: dt.datetime
    mode: CheckInMode
    performed_by: str | None
    notes: str | None
    goal_progress: list[GoalProgressOut]
