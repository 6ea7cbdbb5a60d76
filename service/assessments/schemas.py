from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from mappings.vocabulary import AssessmentKind, NeedDomain, NeedStatus, RiskLevel, Severity
from service.api.schemas import CodingIn, RequestBody, ShortText, StoredRecord, Text


class RiskIn(RequestBody):
    description: Text
    level: RiskLevel


class RiskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    description: str
    level: RiskLevel


class NeedIn(RequestBody):
    domain: NeedDomain
    description: Text
    severity: Severity | None = None
    code: CodingIn | None = None


class NeedCreate(NeedIn):
    assessment_id: str | None = None


class NeedUpdate(RequestBody):
    domain: NeedDomain | None = None
    description: Text | None = None
    severity: Severity | None = None
    status: NeedStatus | None = None
    code: CodingIn | None = None


class NeedOut(StoredRecord):
    case_id: str
    assessment_id: str | None
    domain: NeedDomain
    description: str
    severity: Severity | None
    status: NeedStatus
    code: dict[str, str] | None


class AssessmentCreate(RequestBody):
    kind: AssessmentKind
    performed_at: dt.datetime | None = None
    summary: Text | None = None
    strengths: list[ShortText] = Field(default_factory=list, max_length=50)
    preferences: list[ShortText] = Field(default_factory=list, max_length=50)
    risks: list[RiskIn] = Field(default_factory=list, max_length=50)
    needs: list[NeedIn] = Field(default_factory=list, max_length=100)


class AssessmentUpdate(RequestBody):
    summary: Text | None = None
    strengths: list[ShortText] | None = Field(None, max_length=50)
    preferences: list[ShortText] | None = Field(None, max_length=50)
    risks: list[RiskIn] | None = Field(None, max_length=50)


class AssessmentOut(StoredRecord):
    case_id: str
    kind: AssessmentKind
    performed_at: dt.datetime
    performed_by: str | None
    summary: str | None
    strengths: list[str]
    preferences: list[str]
    risks: list[RiskOut]
