"""Links between local records and their copies on an EHR connection.

A `PatientLink` says "this local patient is Patient/<remote_id> on that EHR": a pull creates it,
and every case of a linked patient is pushed to that EHR. A `ResourceLink` pairs one projected
resource (CarePlan/Goal/ServiceRequest/...) with its remote copy: where a pull took it from, or
where a push put it, with the remote version and the exact JSON last pushed (the base of a
three-way merge).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, enum_column, new_id, utcnow


class LinkOrigin(StrEnum):
    pulled = "pulled"  # the local record was made from the EHR's resource
    pushed = "pushed"  # the EHR's resource was made from the local record


class PatientLink(Base):
    __tablename__ = "ehr_patient_links"
    __table_args__ = (
        sa.UniqueConstraint(
            "connection_id", "remote_id", name="uq_ehr_patient_links_connection_remote"
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    patient_id: Mapped[str] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    remote_id: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ResourceLink(Base):
    __tablename__ = "ehr_resource_links"
    __table_args__ = (
        sa.UniqueConstraint(
            "connection_id",
            "resource_type",
            "local_id",
            name="uq_ehr_resource_links_connection_local",
        ),
        sa.UniqueConstraint(
            "connection_id",
            "resource_type",
            "remote_id",
            name="uq_ehr_resource_links_connection_remote",
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    # The id of the resource in CaseBridge's FHIR store (`fhir_resources.id`).
    local_id: Mapped[str] = mapped_column(sa.String(64))
    # None until the EHR has assigned one (a push in flight).
    remote_id: Mapped[str | None] = mapped_column(sa.String(64))
    remote_version_id: Mapped[str | None] = mapped_column(sa.String(64))
    origin: Mapped[LinkOrigin] = mapped_column(enum_column(LinkOrigin))
    # The local store version last pushed, and the JSON sent for it (the merge base).
    pushed_version_id: Mapped[int | None]
    pushed_content: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # Top-level elements of `pushed_content` that are the EHR's edits, merged in by a push but
    # not taken by the case (`service.push.remote_edits`): a local change to one of them is a
    # conflict, not something to rebase over them.
    remote_edits: Mapped[list[str] | None] = mapped_column(sa.JSON())
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
