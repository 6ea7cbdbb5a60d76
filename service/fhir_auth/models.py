"""Tables of our SMART authorization server: registered clients, spent assertion ids, and
the keys that sign our access tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, VersionedRow, utcnow


class FhirClient(VersionedRow, Base):
    """An app allowed to call /fhir with SMART Backend Services. It proves who it is with a
    JWT signed by a key from its JWKS: fetched from `jwks_url`, or held inline in `jwks`
    (exactly one of the two). `scopes` is the most it may be granted."""

    __tablename__ = "fhir_clients"

    client_id: Mapped[str] = mapped_column(sa.String(100), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    scopes: Mapped[list[str]]
    jwks_url: Mapped[str | None] = mapped_column(sa.String(2000))
    jwks: Mapped[dict[str, Any] | None]
    enabled: Mapped[bool] = mapped_column(sa.Boolean(), default=True)


class UsedAssertion(Base):
    """A client assertion's `jti`, kept until the assertion expires so it cannot be replayed
    (in any process: the primary key decides). Expired rows are purged as new ones arrive."""

    __tablename__ = "fhir_used_assertions"

    client_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    jti: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class TokenSigningKey(Base):
    """A key that signs our access tokens. The private key is PKCS#8 PEM encrypted with the
    settings' encryption key; the newest key of the configured algorithm signs, and every
    stored key verifies (so tokens signed before a rotation stay valid until they expire)."""

    __tablename__ = "fhir_token_signing_keys"

    kid: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    alg: Mapped[str] = mapped_column(sa.String(10))
    public_jwk: Mapped[dict[str, Any]]
    encrypted_private_pem: Mapped[bytes] = mapped_column(sa.LargeBinary())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
