from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, enum_column, new_id, utcnow


class Role(StrEnum):
    admin = "admin"
    case_manager = "case_manager"


class ApiKey(Base):
    """A service account's key. Only its SHA-256 is stored: the key itself is 256 random bits,
    so a fast hash is enough (no dictionary to attack) and lookups stay O(1)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[Role] = mapped_column(enum_column(Role))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


class Practitioner(Base):
    """The professional identity of someone who acts here (`actor`: `user:<sub>` or
    `apikey:<name>`, as changes record it), set by an admin. The cases that name the actor
    refer to a US Core Practitioner built from it (mappings/to_fhir/people.py); an actor
    without one is the service's Organization."""

    __tablename__ = "practitioners"

    actor: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    family_name: Mapped[str] = mapped_column(sa.String(100))
    given_names: Mapped[list[str]] = mapped_column(default=list)
    npi: Mapped[str | None] = mapped_column(sa.String(10))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
