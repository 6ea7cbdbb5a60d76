"""The care plan's working parts: goals (with progress) and interventions (services, referrals)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mappings.vocabulary import (
    GoalAchievement,
    GoalExpressedBy,
    GoalLifecycle,
    GoalPriority,
    InterventionKind,
    InterventionStatus,
    InterventionType,
    PerformerKind,
    Priority,
    ReferralOutcome,
)
from service.assessments.models import Need
from service.cases.models import CaseChild
from service.db.base import Base, enum_column, utcnow


def _link_table(name: str, left: str, right: str) -> sa.Table:
    return sa.Table(
        name,
        Base.metadata,
        sa.Column(f"{left}_id", sa.ForeignKey(f"{left}s.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            f"{right}_id", sa.ForeignKey(f"{right}s.id", ondelete="CASCADE"), primary_key=True
        ),
    )


goal_needs = _link_table("goal_needs", "goal", "need")
intervention_goals = _link_table("intervention_goals", "intervention", "goal")
intervention_needs = _link_table("intervention_needs", "intervention", "need")


class Goal(CaseChild, Base):
    __tablename__ = "goals"

    description: Mapped[str] = mapped_column(sa.Text)
    code: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    expressed_by: Mapped[GoalExpressedBy | None] = mapped_column(enum_column(GoalExpressedBy))
    priority: Mapped[GoalPriority | None] = mapped_column(enum_column(GoalPriority))
    lifecycle_status: Mapped[GoalLifecycle] = mapped_column(enum_column(GoalLifecycle))
    achievement_status: Mapped[GoalAchievement | None] = mapped_column(enum_column(GoalAchievement))
    start_date: Mapped[dt.date | None]
    target_measure: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    target_detail_quantity: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 6))
    target_detail_unit: Mapped[str | None] = mapped_column(sa.String(50))
    target_detail_text: Mapped[str | None] = mapped_column(sa.Text)
    target_due_date: Mapped[dt.date | None] = mapped_column(index=True)
    fhir_extras: Mapped[dict[str, Any]] = mapped_column(default=dict)

    needs: Mapped[list[Need]] = relationship(secondary=goal_needs, lazy="raise")
    progress: Mapped[list[GoalProgress]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="GoalProgress.recorded_at"
    )

    # Views for the API shapes (read with `from_attributes`); the columns stay flat for queries.
    @property
    def target(self) -> dict[str, Any] | None:
        fields = {
            "measure": self.target_measure,
            "detail_quantity": self.target_detail_quantity,
            "detail_unit": self.target_detail_unit,
            "detail_text": self.target_detail_text,
            "due_date": self.target_due_date,
        }
        return fields if any(v is not None for v in fields.values()) else None

    @property
    def need_ids(self) -> list[str]:
        return [need.id for need in self.needs]


class GoalProgress(Base):
    __tablename__ = "goal_progress"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    goal_id: Mapped[str] = mapped_column(sa.ForeignKey("goals.id", ondelete="CASCADE"), index=True)
    check_in_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("check_ins.id", ondelete="SET NULL"), index=True
    )
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str | None] = mapped_column(sa.String(200))
    achievement_status: Mapped[GoalAchievement | None] = mapped_column(enum_column(GoalAchievement))
    note: Mapped[str] = mapped_column(sa.Text)


class Intervention(CaseChild, Base):
    """A service or a referral; it becomes a ServiceRequest."""

    __tablename__ = "interventions"

    kind: Mapped[InterventionKind] = mapped_column(enum_column(InterventionKind))
    type: Mapped[InterventionType] = mapped_column(enum_column(InterventionType))
    description: Mapped[str | None] = mapped_column(sa.Text)
    code: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    performer_kind: Mapped[PerformerKind | None] = mapped_column(enum_column(PerformerKind))
    performer_name: Mapped[str | None] = mapped_column(sa.String(300))
    performer_identifier: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    status: Mapped[InterventionStatus] = mapped_column(enum_column(InterventionStatus))
    priority: Mapped[Priority] = mapped_column(enum_column(Priority))
    scheduled_start: Mapped[dt.datetime | None]
    scheduled_end: Mapped[dt.datetime | None]
    # ServiceRequest.authoredOn as the sender gave it; None: when the row was created.
    authored_at: Mapped[dt.datetime | None]
    requested_by: Mapped[str | None] = mapped_column(sa.String(200))
    referral_outcome: Mapped[ReferralOutcome | None] = mapped_column(enum_column(ReferralOutcome))
    outcome_note: Mapped[str | None] = mapped_column(sa.Text)
    fhir_extras: Mapped[dict[str, Any]] = mapped_column(default=dict)

    goals: Mapped[list[Goal]] = relationship(secondary=intervention_goals, lazy="raise")
    needs: Mapped[list[Need]] = relationship(secondary=intervention_needs, lazy="raise")

    @property
    def performer(self) -> dict[str, Any] | None:
        if self.performer_kind is None or self.performer_name is None:
            return None
        return {
            "kind": self.performer_kind,
            "name": self.performer_name,
            "identifier": self.performer_identifier,
        }

    @property
    def goal_ids(self) -> list[str]:
        return [goal.id for goal in self.goals]

    @property
    def need_ids(self) -> list[str]:
        return [need.id for need in self.needs]
