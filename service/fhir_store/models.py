"""Tables of the FHIR store: current resources, every version, and the search index."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base


class StoredResource(Base):
    """The current version of a resource. `content` is exactly what `/fhir` serves."""

    __tablename__ = "fhir_resources"
    __table_args__ = (
        sa.Index("ix_fhir_resources_type_created", "resource_type", "created_at", "id"),
    )

    resource_type: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version_id: Mapped[int]
    # Immutable: the order search pages walk in, so pages stay stable while resources change.
    created_at: Mapped[dt.datetime]
    last_updated: Mapped[dt.datetime] = mapped_column(index=True)
    deleted: Mapped[bool] = mapped_column(default=False)
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    # SHA-256 of the projection without meta.versionId/lastUpdated: unchanged means no new version.
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    case_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    patient_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)


class ResourceVersion(Base):
    """Every version ever stored, current included: vread and _history read these."""

    __tablename__ = "fhir_resource_versions"
    __table_args__ = (
        sa.Index("ix_fhir_resource_versions_type_updated", "resource_type", "last_updated"),
    )

    resource_type: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(primary_key=True)
    last_updated: Mapped[dt.datetime]
    deleted: Mapped[bool] = mapped_column(default=False)
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)


class SearchEntry(Base):
    """One searchable value of a current resource: a token (system, value), a reference
    (value = "Type/id"), a string (value, lower-cased) or a date range [low, high)."""

    __tablename__ = "fhir_search_index"
    __table_args__ = (
        sa.Index("ix_fhir_search_lookup", "resource_type", "param", "value"),
        sa.Index("ix_fhir_search_resource", "resource_type", "resource_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    resource_id: Mapped[str] = mapped_column(sa.String(64))
    param: Mapped[str] = mapped_column(sa.String(64))
    system: Mapped[str | None] = mapped_column(sa.String(500))
    value: Mapped[str | None] = mapped_column(sa.String(500))
    low: Mapped[dt.datetime | None]
    high: Mapped[dt.datetime | None]
