"""Tables of the connection registry: EHR connections and the key pairs that sign for them."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, VersionedRow, enum_column, new_id, utcnow


class AuthMode(StrEnum):
    backend_services = "backend-services"
    app_launch = "app-launch"
    none = "none"  # an open sandbox: no OAuth at all


class Connection(VersionedRow, Base):
    __tablename__ = "ehr_connections"

    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    base_url: Mapped[str] = mapped_column(sa.String(2000))
    auth_mode: Mapped[AuthMode] = mapped_column(enum_column(AuthMode))
    client_id: Mapped[str | None] = mapped_column(sa.String(500))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    signing_alg: Mapped[str] = mapped_column(sa.String(10))
    # `service.ehr.discovery.Capabilities` as JSON; None until discovery has succeeded once.
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON())
    discovered_at: Mapped[dt.datetime | None]
    # Push the rendered plan as a DocumentReference where this EHR cannot write CarePlan;
    # None follows `Settings.push_document_fallback`.
    document_fallback: Mapped[bool | None]
    # What a pull reads (`service.pull.scope.PullScope` as JSON); None follows the defaults.
    pull_scope: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON())
    # The patient-search parameters of a type, as an admin says: {"Condition": ["patient"]},
    # [] for none. They win over the CapabilityStatement and the probes (service/pull/searches).
    search_overrides: Mapped[dict[str, list[str]]] = mapped_column(
        sa.JSON(), default=dict, server_default=sa.text("'{}'")
    )

    keys: Mapped[list[ConnectionKey]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ConnectionKey.created_at"
    )
    search_probes: Mapped[list[SearchProbe]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="SearchProbe.resource_type"
    )


class ConnectionKey(Base):
    """One signing key pair, published in the JWKS until `retire_after` has passed (never, while
    unset). It signs from `signs_from` (from its creation, while unset) until a later key's
    `signs_from` comes: a rotated-in key is published before it signs."""

    __tablename__ = "ehr_connection_keys"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    alg: Mapped[str] = mapped_column(sa.String(10))
    kid: Mapped[str] = mapped_column(sa.String(100), unique=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column()
    encrypted_private_pem: Mapped[bytes] = mapped_column(sa.LargeBinary())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retire_after: Mapped[dt.datetime | None]
    signs_from: Mapped[dt.datetime | None]


class SearchProbe(Base):
    """What a probe of the EHR found out about a type's patient search, where the
    CapabilityStatement declares none (service/pull/searches.py): made once, then used."""

    __tablename__ = "ehr_search_probes"
    __table_args__ = (
        sa.UniqueConstraint(
            "connection_id", "resource_type", name="uq_ehr_search_probes_connection_type"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    # "patient" or "subject"; None when the EHR answered neither.
    patient_param: Mapped[str | None] = mapped_column(sa.String(20))
    probed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
