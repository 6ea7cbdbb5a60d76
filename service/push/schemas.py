"""API shapes of the push: sync status, conflicts and their resolution."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.schemas import RequestBody
from service.ehr.circuit import BreakerState
from service.push.models import ConflictResolution, ConflictStatus, SyncStatus


class SyncStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    case_id: str
    connection_id: str
    status: SyncStatus
    open_conflicts: int = Field(
        0,
        description="Open conflicts of the pair: each holds back its own resource only; the "
        "rest of the case is pushed (status `conflict` once it all is).",
    )
    attempts: int
    throttles: int = Field(
        0, description="Times in a row the EHR throttled this pair or its circuit was open."
    )
    circuit: BreakerState = Field(
        BreakerState.closed,
        description="The connection's circuit breaker, as this process sees it.",
    )
    next_attempt_at: dt.datetime
    last_error: str | None
    synced_version: int | None
    synced_at: dt.datetime | None
    unsupported: dict[str, Any]
    updated_at: dt.datetime


class ConflictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    connection_id: str
    resource_type: str
    local_id: str
    local_version_id: int
    remote_id: str
    remote_version_id: str | None
    elements: list[str]
    base: dict[str, Any]
    local: dict[str, Any]
    remote: dict[str, Any]
    status: ConflictStatus
    resolution: ConflictResolution | None
    resolved_by: str | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None


class ConflictResolutionIn(RequestBody):
    resolution: Literal["keep-local", "take-remote", "edit"]
    # For `edit`: the resource as it should be on the EHR (id and meta are ignored).
    resource: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _resource_only_for_edit(self) -> Self:
        if (self.resolution == "edit") != (self.resource is not None):
            raise ValueError("`resource` is required for `edit` and only allowed there")
        return self
