from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mappings.vocabulary import CheckInMode
from service.cases.models import CaseChild
from service.db.base import Base, enum_column, utcnow
from service.plans.models import GoalProgress


class CheckIn(CaseChild, Base):
    """A monitoring contact: notes, and progress recorded against the case's goals."""

    __tablename__ = "check_ins"

    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    mode: Mapped[CheckInMode] = mapped_column(enum_column(CheckInMode))
    performed_by: Mapped[str | None] = mapped_column(sa.String(200))
    notes: Mapped[str | None] = mapped_column(sa.Text)

    goal_progress: Mapped[list[GoalProgress]] = relationship(lazy="raise")
