"""Tables of SMART App Launch: pending authorizations (state) and the tokens a launch obtained."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, VersionedRow, new_id, utcnow


class LaunchState(Base):
    """One authorization request in flight. Only hashes of `state` and of the browser session
    are stored, so a database reader cannot complete someone else's login."""

    __tablename__ = "smart_launch_states"

    state_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    browser_session_hash: Mapped[str] = mapped_column(sa.String(64))
    encrypted_code_verifier: Mapped[bytes] = mapped_column(sa.LargeBinary())
    redirect_uri: Mapped[str] = mapped_column(sa.String(2000))
    launch: Mapped[str | None] = mapped_column(sa.String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class LaunchGrant(VersionedRow, Base):
    """The tokens one App Launch obtained, encrypted, with the launch context. The version
    column makes refresh-token rotation safe: two refreshes of one grant cannot both win."""

    __tablename__ = "smart_launch_grants"

    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    browser_session_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    encrypted_access_token: Mapped[bytes] = mapped_column(sa.LargeBinary())
    encrypted_refresh_token: Mapped[bytes | None] = mapped_column(sa.LargeBinary())
    scope: Mapped[str] = mapped_column(sa.String(4000), default="")
    expires_at: Mapped[dt.datetime | None]
    patient: Mapped[str | None] = mapped_column(sa.String(200))
    encounter: Mapped[str | None] = mapped_column(sa.String(200))
    fhir_user: Mapped[str | None] = mapped_column(sa.String(2000))


class SharedAccessToken(Base):
    """A Backend Services access token shared by every process (service.smart.shared_tokens):
    encrypted, with its expiry, one per connection and scope set. `fetch_lease_*` names the
    process fetching a new one, so that the others wait for it instead of fetching too."""

    __tablename__ = "smart_shared_tokens"
    __table_args__ = (
        sa.UniqueConstraint("connection_id", "scope_key", name="uq_smart_shared_tokens_key"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    # sha256 of the sorted scopes, so the key stays short whatever the scopes.
    scope_key: Mapped[str] = mapped_column(sa.String(64))
    encrypted_access_token: Mapped[bytes | None] = mapped_column(sa.LargeBinary())
    # sha256 of the token: a 401's rejected token is compared without decrypting.
    token_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    scope: Mapped[str] = mapped_column(sa.String(4000), default="")
    # Epoch seconds, as the token cache counts them.
    expires_at: Mapped[float | None] = mapped_column(sa.Float())
    lifetime_seconds: Mapped[float | None] = mapped_column(sa.Float())
    fetch_lease_token: Mapped[str | None] = mapped_column(sa.String(36))
    fetch_lease_expires_at: Mapped[float | None] = mapped_column(sa.Float())
