from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mappings.vocabulary import (
    CareSetting,
    CareTeamRole,
    CaseStatus,
    ClosureReason,
    Priority,
    Program,
    TransitionKind,
    TransitionStatus,
)
from service.api.schemas import RequestBody, ShortText, StoredRecord, Text


class CaseCreate(RequestBody):
    patient_id: str
    program: Program
    title: ShortText | None = None
    manager: ShortText | None = None
    priority: Priority = Priority.routine
    status: CaseStatus = Field(
        CaseStatus.referral, description="Where the case starts: referral or intake."
    )


class OpenItemAction(StrEnum):
    """What closing a case does to a goal or intervention still open: `complete` (Goal
    completed, ServiceRequest completed) or `cancel` (Goal cancelled, ServiceRequest revoked)."""

    complete = "complete"
    cancel = "cancel"


class CaseUpdate(RequestBody):
    """Status changes follow the lifecycle; closing needs `closure_reason`, and, while goals or
    interventions are open, `open_items` saying what becomes of them."""

    program: Program | None = None
    title: ShortText | None = None
    manager: ShortText | None = None
    priority: Priority | None = None
    status: CaseStatus | None = None
    closure_reason: ClosureReason | None = None
    closure_note: Text | None = None
    open_items: OpenItemAction | dict[str, OpenItemAction] | None = Field(
        None,
        description="Only when closing: `complete` or `cancel` every open goal and intervention, "
        "or {id: action} for each of them.",
    )


class CaseOut(StoredRecord):
    patient_id: str
    program: Program
    title: str | None
    manager: str | None
    priority: Priority
    status: CaseStatus
    closure_reason: ClosureReason | None
    closure_note: str | None
    opened_at: dt.datetime
    closed_at: dt.datetime | None


class CaseEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: dt.datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    changes: dict[str, Any] = Field(description="{field: [old, new]}")


class CareTeamMemberCreate(RequestBody):
    role: CareTeamRole
    name: ShortText
    telecom: ShortText | None = None
    active: bool = True


class CareTeamMemberUpdate(RequestBody):
    role: CareTeamRole | None = None
    name: ShortText | None = None
    telecom: ShortText | None = None
    active: bool | None = None


class CareTeamMemberOut(StoredRecord):
    case_id: str
    role: CareTeamRole
    name: str
    telecom: str | None
    active: bool


class TransitionCreate(RequestBody):
    kind: TransitionKind
    from_setting: CareSetting
    to_setting: CareSetting
    planned_date: dt.date | None = None
    actual_date: dt.date | None = None
    status: TransitionStatus = TransitionStatus.planned
    follow_ups: list[ShortText] = Field(default_factory=list, max_length=50)


class TransitionUpdate(RequestBody):
    kind: TransitionKind | None = None
    from_setting: CareSetting | None = None
    to_setting: CareSetting | None = None
    planned_date: dt.date | None = None
    actual_date: dt.date | None = None
    status: TransitionStatus | None = None
    follow_ups: list[ShortText] | None = Field(None, max_length=50)


class TransitionOut(StoredRecord):
    case_id: str
    kind: TransitionKind
    from_setting: CareSetting
    to_setting: CareSetting
    planned_date: dt.date | None
    actual_date: dt.date | None
    status: TransitionStatus
    follow_ups: list[str]


class NoteCreate(RequestBody):
    text: Text


class NoteUpdate(RequestBody):
    text: Text | None = None


class NoteOut(StoredRecord):
    case_id: str
    author: str | None
    text: str
