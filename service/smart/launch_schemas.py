"""API shapes of App Launch. Tokens never leave the service."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class LaunchGrantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The grant: pass it to later calls made for this user.")
    version: int
    connection_id: str
    scope: str
    expires_at: dt.datetime | None
    patient: str | None = Field(description="Patient id in context (the EHR's `patient`).")
    encounter: str | None
    fhir_user: str | None = Field(description="The user, e.g. Practitioner/123 (`fhirUser`).")
