from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mappings.vocabulary import AdministrativeGender
from service.api.schemas import RequestBody, ShortText, StoredRecord


class IdentifierIn(RequestBody):
    system: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    value: ShortText


class IdentifierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    system: str
    value: str


class PatientCreate(RequestBody):
    given_name: ShortText | None = None
    family_name: ShortText | None = None
    birth_date: dt.date | None = None
    gender: AdministrativeGender | None = None
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=20)


class PatientUpdate(RequestBody):
    given_name: ShortText | None = None
    family_name: ShortText | None = None
    birth_date: dt.date | None = None
    gender: AdministrativeGender | None = None
    identifiers: list[IdentifierIn] | None = Field(None, max_length=20)


class PatientOut(StoredRecord):
    given_name: str | None
    family_name: str | None
    birth_date: dt.date | None
    gender: AdministrativeGender | None
    identifiers: list[IdentifierOut]
