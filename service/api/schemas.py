"""Base classes shared by every API shape."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class RequestBody(BaseModel):
    """Unknown fields are refused, not ignored: a typo must not silently drop data."""

    model_config = ConfigDict(extra="forbid")


class StoredRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class CodingIn(RequestBody):
    system: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    code: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    display: Annotated[str, StringConstraints(max_length=500)] | None = None


Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
