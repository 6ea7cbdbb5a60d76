from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mappings.vocabulary import AdministrativeGender
from service.db.base import Base, VersionedRow, enum_column


class Patient(VersionedRow, Base):
    __tablename__ = "patients"

    given_name: Mapped[str | None] = mapped_column(sa.String(200))
    family_name: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    birth_date: Mapped[dt.date | None]
    gender: Mapped[AdministrativeGender | None] = mapped_column(enum_column(AdministrativeGender))
    fhir_extras: Mapped[dict[str, Any]] = mapped_column(default=dict)

    identifiers: Mapped[list[PatientIdentifier]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="PatientIdentifier.id"
    )


class PatientIdentifier(Base):
    """An external identifier (system|value); one identifier names at most one patient."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (
        sa.UniqueConstraint("system", "value", name="uq_patient_identifiers_system_value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    system: Mapped[str] = mapped_column(sa.String(500))
    value: Mapped[str] = mapped_column(sa.String(200))
