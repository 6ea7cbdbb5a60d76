from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from service.api.schemas import RequestBody
from service.auth.models import Role


class ApiKeyCreate(RequestBody):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]
    role: Role = Role.case_manager


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    role: Role
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiKeyIssued(ApiKeyOut):
    key: str


def npi_check_digit_ok(npi: str) -> bool:
    """An NPI is 9 digits and a Luhn check digit computed over `80840` + those 9 digits (CMS,
    "Requirements for NPI Check Digit")."""
    digits = [int(d) for d in "80840" + npi]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 1:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return total % 10 == 0


Npi = Annotated[str, StringConstraints(pattern=r"^[12][0-9]{9}$")]


class PractitionerSet(RequestBody):
    """Who an actor is as a clinician: the cases it acts on refer to this Practitioner."""

    family_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ]
    given_names: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    ] = Field(default_factory=list, max_length=5)
    npi: Npi | None = None

    @field_validator("npi")
    @classmethod
    def _npi_check_digit(cls, value: str | None) -> str | None:
        if value is not None and not npi_check_digit_ok(value):
            raise ValueError("not a valid NPI: its check digit does not match")
        return value


class PractitionerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    actor: str
    family_name: str
    given_names: list[str]
    npi: str | None
    updated_at: dt.datetime
