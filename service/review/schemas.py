"""API shapes of review items."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from service.api.schemas import RequestBody
from service.review.models import ReviewDecision, ReviewSource, ReviewStatus


class ReviewItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str | None
    patient_id: str | None
    connection_id: str | None
    resource_type: str
    local_id: str | None
    remote_reference: str | None
    elements: list[str]
    ehr_value: dict[str, Any]
    case_value: dict[str, Any]
    reason: str
    source: ReviewSource
    status: ReviewStatus
    decision: ReviewDecision | None
    decided_by: str | None
    decided_at: dt.datetime | None
    note: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ReviewDecisionIn(RequestBody):
    decision: Literal["apply-ehr-value", "keep-case-value", "dismissed"]
    note: Annotated[str, StringConstraints(max_length=4000)] | None = None
