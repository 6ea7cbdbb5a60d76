from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

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
