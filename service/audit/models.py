"""The audit table: searchable columns, and the AuditEvent as it is served."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base


class AuditRecord(Base):
    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_recorded", "recorded_at", "id"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    recorded_at: Mapped[dt.datetime]
    agent: Mapped[str] = mapped_column(sa.String(200), index=True)
    action: Mapped[str] = mapped_column(sa.String(1))  # C R U D E
    interaction: Mapped[str] = mapped_column(sa.String(40))
    resource_type: Mapped[str | None] = mapped_column(sa.String(40))
    resource_id: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[int]
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    patients: Mapped[list[AuditPatient]] = relationship(cascade="all, delete-orphan", lazy="raise")


class AuditPatient(Base):
    """A patient an audited interaction concerned (a search may concern many)."""

    __tablename__ = "audit_event_patients"

    event_id: Mapped[str] = mapped_column(
        sa.ForeignKey("audit_events.id", ondelete="CASCADE"), primary_key=True
    )
    patient_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)
