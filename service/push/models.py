"""Tables of the push: the outbox of changes, one sync row per (case, connection), conflicts.

- `PushOutboxEntry`: one row per committed change of a linked case, written in the change's
  transaction. Rows stay as the durable record; `claim_token` ties them to the push that
  delivered them, `delivered_at` says it finished.
- `PushSync`: the unit of serialization and the visible status. A worker leases the row
  (`lease_token`, `lease_expires_at`) to push that pair, so at most one push per pair is in
  flight, and an expired lease (a crashed worker) is taken over by the next claim.
- `PushConflict`: a resource whose three-way merge found elements changed on both sides; it
  holds back that resource only until a person resolves it: the rest of the case (and its
  closure) is pushed meanwhile.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, enum_column, new_id, utcnow


class SyncStatus(StrEnum):
    pending = "pending"  # a change waits to be pushed
    in_flight = "in-flight"  # a worker holds the lease and is pushing
    synced = "synced"  # the EHR has the latest projection
    # Synced but for the resources open conflicts hold back (each waits for a person); a new
    # change wakes the pair like a synced one.
    conflict = "conflict"
    failed = "failed"  # the last attempt failed; it is retried at next_attempt_at
    dead = "dead"  # the attempts ran out; only a replay sends it again
    unsupported = "unsupported"  # the EHR cannot write what this case needs


class ConflictStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class ConflictResolution(StrEnum):
    keep_local = "keep-local"
    take_remote = "take-remote"
    edit = "edit"


class PushOutboxEntry(Base):
    __tablename__ = "push_outbox"
    __table_args__ = (
        sa.Index("ix_push_outbox_pair", "case_id", "connection_id", "delivered_at"),
        # The retention prune finds the oldest deliveries without reading the rest.
        sa.Index("ix_push_outbox_delivered_at", "delivered_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    delivered_at: Mapped[dt.datetime | None]


class PushSync(Base):
    __tablename__ = "push_syncs"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "connection_id", name="uq_push_syncs_case_connection"),
        sa.Index("ix_push_syncs_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[SyncStatus] = mapped_column(enum_column(SyncStatus))
    attempts: Mapped[int] = mapped_column(default=0)
    # Times in a row the EHR throttled this pair (429) or its circuit was open: they set the
    # backoff but are not attempts, so throttling alone never dead-letters a push.
    throttles: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_token: Mapped[str | None] = mapped_column(sa.String(36))
    lease_expires_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Resource type -> why the EHR cannot write it ("not supported by this EHR: ...").
    unsupported: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The local CarePlan store version the EHR last received, and when.
    synced_version: Mapped[int | None]
    synced_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PushConflict(Base):
    __tablename__ = "push_conflicts"
    # A push looks up its pair's open conflicts: an index on the whole key keeps that one
    # lookup however many conflicts a connection has had.
    __table_args__ = (sa.Index("ix_push_conflicts_pair", "case_id", "connection_id", "status"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    local_id: Mapped[str] = mapped_column(sa.String(64))
    local_version_id: Mapped[int]
    remote_id: Mapped[str] = mapped_column(sa.String(64))
    remote_version_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Top-level element names changed differently on both sides.
    elements: Mapped[list[str]] = mapped_column(default=list)
    base: Mapped[dict[str, Any]] = mapped_column()
    local: Mapped[dict[str, Any]] = mapped_column()
    remote: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[ConflictStatus] = mapped_column(enum_column(ConflictStatus))
    resolution: Mapped[ConflictResolution | None] = mapped_column(enum_column(ConflictResolution))
    resolved_by: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
