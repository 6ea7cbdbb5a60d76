"""API shapes of pulls."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mappings.vocabulary import Program
from service.api.schemas import RequestBody, ShortText
from service.pull.models import PullState

RemoteId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
IdentifierToken = Annotated[
    str, StringConstraints(min_length=3, max_length=700, pattern=r"^[^|]+\|[^|]+$")
]


class PullTargetIn(RequestBody):
    remote_id: RemoteId | None = Field(None, description="The Patient id on the EHR.")
    identifier: IdentifierToken | None = Field(
        None, description="An identifier (system|value) to find the Patient on the EHR by."
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.remote_id is None) == (self.identifier is None):
            raise ValueError("give either remote_id or identifier")
        return self


ResourceType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,63}$")]


class BulkGroupIn(RequestBody):
    id: RemoteId = Field(description="The Group on the EHR to export with Bulk Data.")
    types: list[ResourceType] = Field(
        default_factory=list,
        max_length=50,
        description="The `_type` of the export; empty: the Patient and the connection's pull "
        "scope. The scope's Observation categories apply either way (`_typeFilter`).",
    )


class PullCreate(RequestBody):
    """Either patients, pulled one by one, or a group, pulled with one Bulk Data export."""

    patients: list[PullTargetIn] | None = Field(None, min_length=1, max_length=10_000)
    group: BulkGroupIn | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.patients is None) == (self.group is None):
            raise ValueError("give either patients or group")
        return self


class PullFailureOut(BaseModel):
    target: str | None
    resource_type: str | None
    remote_id: str | None
    reason: str


class PullOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    connection_id: str
    state: PullState
    requested_by: str
    cancel_requested: bool
    bulk_group_id: str | None
    progress_note: str | None = Field(description="The EHR's last X-Progress of an export.")
    patients_total: int
    patients_done: int
    counts: dict[str, int] = Field(description="Resources stored, per type.")
    failures: list[PullFailureOut]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @model_validator(mode="before")
    @classmethod
    def _total(cls, data: Any) -> Any:
        if hasattr(data, "targets"):
            return {
                name: getattr(data, name) for name in cls.model_fields if name != "patients_total"
            } | {"patients_total": len(data.targets)}
        return data


class ConflictResolution(RequestBody):
    patient_id: str = Field(description="The candidate the remote patient is.")


class IdentityConflictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    connection_id: str
    remote_patient_id: str
    candidate_patient_ids: list[str]
    reason: str
    detected_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_patient_id: str | None
    resolved_by: str | None


class PulledRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    connection_id: str
    connection_name: str
    resource_type: str
    remote_id: str
    remote_version_id: str | None
    remote_last_updated: dt.datetime | None = Field(
        description="meta.lastUpdated on the EHR, as far as the EHR sent it."
    )
    pulled_at: dt.datetime
    content: dict[str, Any] | None = Field(
        None,
        description="With `content=true`: the resource as the EHR sent it and as stored "
        "(decimals keep their digits).",
    )


class ImportedResourceOut(BaseModel):
    resource_type: str
    remote_id: str
    local_id: str


class SkippedResourceOut(BaseModel):
    resource_type: str
    remote_id: str
    reason: str


class CaseFromEhrCreate(RequestBody):
    """What the planner chooses when a case opens from EHR data (the EHR's plan names no
    CaseBridge program unless CaseBridge wrote it)."""

    program: Program | None = Field(
        None,
        description="The case's program; else the one the EHR's CarePlan names, else nursing. "
        "It can be changed later with PATCH /api/cases/{id}.",
    )
    manager: ShortText | None = None


class CaseFromEhrOut(BaseModel):
    case_id: str
    imported: list[ImportedResourceOut]
    skipped: list[SkippedResourceOut]


class SummarySourceOut(BaseModel):
    connection_id: str
    connection_name: str
    resource: str = Field(description="Type/id of the record on that EHR.")
    last_updated: str | None = Field(description="The record's meta.lastUpdated on the EHR.")


class SummaryItemOut(BaseModel):
    text: str
    date: str | None = Field(description="As the EHR wrote it (a date, or a dateTime).")
    status: str | None
    code: str | None = Field(description="system|code of its first coding.")
    value: str | None = Field(description="A measurement, dosage or reaction, as sent.")
    category: str | None
    source: SummarySourceOut


class PatientSummaryOut(BaseModel):
    """What the EHRs hold on a patient, as last pulled, for the planner to read."""

    patient_id: str
    problems: list[SummaryItemOut]
    medications: list[SummaryItemOut]
    allergies: list[SummaryItemOut]
    encounters: list[SummaryItemOut] = Field(description="The 10 most recent.")
    vital_signs: list[SummaryItemOut] = Field(description="The latest of each kind.")
    labs: list[SummaryItemOut] = Field(description="The latest of each test.")
