from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mappings.vocabulary import AssessmentKind, NeedDomain, NeedStatus, RiskLevel, Severity
from service.cases.models import CaseChild
from service.db.base import Base, enum_column, utcnow


class Assessment(CaseChild, Base):
    __tablename__ = "assessments"

    kind: Mapped[AssessmentKind] = mapped_column(enum_column(AssessmentKind))
    performed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    performed_by: Mapped[str | None] = mapped_column(sa.String(200))
    summary: Mapped[str | None] = mapped_column(sa.Text)
    strengths: Mapped[list[str]] = mapped_column(default=list)
    preferences: Mapped[list[str]] = mapped_column(default=list)

    risks: Mapped[list[Risk]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="Risk.id"
    )


class Risk(Base):
    __tablename__ = "risks"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    assessment_id: Mapped[str] = mapped_column(
        sa.ForeignKey("assessments.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str] = mapped_column(sa.Text)
    level: Mapped[RiskLevel] = mapped_column(enum_column(RiskLevel))


class Need(CaseChild, Base):
    """A need or problem found by an assessment; it becomes a health-concern Condition."""

    __tablename__ = "needs"

    assessment_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("assessments.id", ondelete="SET NULL"), index=True
    )
    domain: Mapped[NeedDomain] = mapped_column(enum_column(NeedDomain))
    description: Mapped[str] = mapped_column(sa.Text)
    severity: Mapped[Severity | None] = mapped_column(enum_column(Severity))
    status: Mapped[NeedStatus] = mapped_column(enum_column(NeedStatus))
    code: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    # Condition.recordedDate as the sender gave it; None: when the row was created.
    recorded_at: Mapped[dt.datetime | None]
    fhir_extras: Mapped[dict[str, Any]] = mapped_column(default=dict)
