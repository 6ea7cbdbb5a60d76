"""The shared token buckets of the rate limits (see `rate_limits`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base


class RateLimitBucket(Base):
    """One token bucket, shared by every process on the database. `tokens` is its level at
    `updated_at` (epoch seconds of the process that last took from it); the refill since then
    is computed, never stored by a timer. `granted` is what the last take handed out, so the
    taking UPDATE can return it. A missing row is a full bucket."""

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(sa.Double())
    updated_at: Mapped[float] = mapped_column(sa.Double(), index=True)
    granted: Mapped[int] = mapped_column(sa.Integer())
