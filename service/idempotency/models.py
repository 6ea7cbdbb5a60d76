"""The table of `Idempotency-Key`s: one row per (caller, key), first a reservation, then the
answer that replays of the key get."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base


class IdempotencyKey(Base):
    """`status_code` is NULL while the first request holds the key (until `lease_until`);
    then the stored answer is served to every replay until `expires_at`."""

    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    # SHA-256 of method, path and body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    # Who holds the reservation: only its holder may complete or release it.
    token: Mapped[str] = mapped_column(sa.String(32))
    lease_until: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    status_code: Mapped[int | None]
    headers: Mapped[dict[str, Any] | None]
    body: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # What the answer disclosed (`service.audit.events.Disclosure`): a replay is audited as
    # the first answer was. NULL on answers stored before it was kept.
    audit: Mapped[dict[str, Any] | None]
