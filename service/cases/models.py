from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mappings.vocabulary import (
    CareSetting,
    CareTeamRole,
    CaseStatus,
    ClosureReason,
    Priority,
    Program,
    TransitionKind,
    TransitionStatus,
)
from service.db.base import Base, VersionedRow, enum_column, utcnow
from service.patients.models import Patient


class Case(VersionedRow, Base):
    __tablename__ = "cases"

    patient_id: Mapped[str] = mapped_column(sa.ForeignKey("patients.id"), index=True)
    program: Mapped[Program] = mapped_column(enum_column(Program), index=True)
    title: Mapped[str | None] = mapped_column(sa.String(300))
    manager: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    priority: Mapped[Priority] = mapped_column(enum_column(Priority))
    status: Mapped[CaseStatus] = mapped_column(enum_column(CaseStatus), index=True)
    closure_reason: Mapped[ClosureReason | None] = mapped_column(enum_column(ClosureReason))
    closure_note: Mapped[str | None] = mapped_column(sa.Text)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]
    fhir_extras: Mapped[dict[str, Any]] = mapped_column(default=dict)

    patient: Mapped[Patient] = relationship(lazy="raise")


class CaseChild(VersionedRow):
    """A record that belongs to one case."""

    case_id: Mapped[str] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)


class CareTeamMember(CaseChild, Base):
    __tablename__ = "care_team_members"

    role: Mapped[CareTeamRole] = mapped_column(enum_column(CareTeamRole))
    name: Mapped[str] = mapped_column(sa.String(200))
    telecom: Mapped[str | None] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(default=True)


class Transition(CaseChild, Base):
    """A transition of care: discharge, admission, or a change in the level of care."""

    __tablename__ = "transitions"

    kind: Mapped[TransitionKind] = mapped_column(enum_column(TransitionKind))
    from_setting: Mapped[CareSetting] = mapped_column(enum_column(CareSetting))
    to_setting: Mapped[CareSetting] = mapped_column(enum_column(CareSetting))
    planned_date: Mapped[dt.date | None]
    actual_date: Mapped[dt.date | None]
    status: Mapped[TransitionStatus] = mapped_column(enum_column(TransitionStatus))
    follow_ups: Mapped[list[str]] = mapped_column(default=list)


class Note(CaseChild, Base):
    __tablename__ = "notes"

    author: Mapped[str | None] = mapped_column(sa.String(200))
    text: Mapped[str] = mapped_column(sa.Text)


class CaseEvent(Base):
    """The change history of a case: who changed what, when."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(20))
    entity: Mapped[str] = mapped_column(sa.String(40))
    entity_id: Mapped[str] = mapped_column(sa.String(36))
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
