from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class PatientLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_id: str
    remote_id: str = Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="the EHR's Patient.id")


class PatientLinkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    connection_id: str
    patient_id: str
    remote_id: str
    created_at: dt.datetime
