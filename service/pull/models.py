"""Tables of EHR pulls: the records pulled, where each patient's pull got to, the pull jobs, and
the identity conflicts left for a person to resolve."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, enum_column, new_id, utcnow


class PulledRecord(Base):
    """One EHR resource as last pulled: its exact JSON bytes and where it came from.

    Unique per connection, type and remote id, so a repeated or resumed pull updates the row
    instead of adding a second one."""

    __tablename__ = "ehr_records"
    __table_args__ = (
        sa.UniqueConstraint(
            "connection_id", "resource_type", "remote_id", name="uq_ehr_records_connection_remote"
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    remote_id: Mapped[str] = mapped_column(sa.String(64))
    remote_version_id: Mapped[str | None] = mapped_column(sa.String(64))
    remote_last_updated: Mapped[dt.datetime | None]
    # The local patient the record is about (None for records of no patient, e.g. an
    # Organization); `remote_patient_id` is the Patient id on the EHR.
    patient_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    remote_patient_id: Mapped[str | None] = mapped_column(sa.String(64))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary())
    pulled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PullCursor(Base):
    """Where the last successful pull of one type for one remote patient got to, in the EHR's
    own clock: the next pull asks for `_lastUpdated=gt<since>`. One per type, so that a type
    that failed is read in full again while the others stay incremental."""

    __tablename__ = "ehr_pull_cursors"
    __table_args__ = (
        sa.UniqueConstraint(
            "connection_id",
            "remote_patient_id",
            "resource_type",
            name="uq_ehr_pull_cursors_connection_patient_type",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    remote_patient_id: Mapped[str] = mapped_column(sa.String(64))
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    since: Mapped[dt.datetime]


class BulkCursor(Base):
    """The `transactionTime` of the last complete Bulk export of a Group: the next export asks
    for `_since` it."""

    __tablename__ = "ehr_bulk_cursors"
    __table_args__ = (
        sa.UniqueConstraint(
            "connection_id", "group_id", name="uq_ehr_bulk_cursors_connection_group"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[str] = mapped_column(sa.String(64))
    since: Mapped[dt.datetime]


class PullState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"  # every patient and type was read
    # Some patients or types failed (reasons in `failures`), the rest was stored.
    completed_with_errors = "completed_with_errors"
    failed = "failed"  # nothing was stored; the reasons are in `failures`
    cancelled = "cancelled"


def final_state(failures: list[Any], counts: dict[str, Any]) -> PullState:
    """How a pull that ran to its end went: a pull that stored something despite failures
    (two patients of three, every type but one) completed with errors, not failed."""
    if not failures:
        return PullState.succeeded
    if any(int(n) > 0 for n in counts.values()):
        return PullState.completed_with_errors
    return PullState.failed


class PullJob(Base):
    __tablename__ = "ehr_pull_jobs"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[PullState] = mapped_column(enum_column(PullState), index=True)
    # [{"remote_id": ...} | {"identifier": "system|value"}], in request order.
    targets: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON())
    requested_by: Mapped[str] = mapped_column(sa.String(200))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # A population pull: the Group exported with Bulk Data, and the types asked for.
    bulk_group_id: Mapped[str | None] = mapped_column(sa.String(64))
    bulk_types: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    # The EHR's last `X-Progress` while an export runs.
    progress_note: Mapped[str | None] = mapped_column(sa.String(500))
    patients_done: Mapped[int] = mapped_column(default=0)
    # Resources stored, per type; failures as {"target", "resource_type", "reason"}.
    counts: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)
    failures: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON(), default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # The runner that holds a running job: a lease it renews while it works. A job whose lease
    # ran out (its runner died) is claimed again by any runner, which skips `done_targets`.
    lease_token: Mapped[str | None] = mapped_column(sa.String(36))
    lease_expires_at: Mapped[dt.datetime | None]
    # Labels of the targets whose pull was recorded, so a job taken over resumes after them.
    done_targets: Mapped[list[str]] = mapped_column(
        sa.JSON(), default=list, server_default=sa.text("'[]'")
    )
    # The local patients whose records the job stored, whichever runner stored them: the
    # audit of the finished job names them all.
    pulled_patient_ids: Mapped[list[str]] = mapped_column(
        sa.JSON(), default=list, server_default=sa.text("'[]'")
    )


class PullSchedule(Base):
    """When a scheduled task (the refresh) is next due, across every runner: the runner that
    moves `next_run_at` on by a guarded UPDATE runs it, the others see it moved."""

    __tablename__ = "ehr_pull_schedules"

    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    next_run_at: Mapped[dt.datetime]
    last_run_at: Mapped[dt.datetime | None]


class IdentityConflict(Base):
    """An EHR patient whose identifiers (or existing link) point to more than one local patient.
    Nothing is merged or linked: a person decides."""

    __tablename__ = "ehr_identity_conflicts"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="CASCADE"), index=True
    )
    remote_patient_id: Mapped[str] = mapped_column(sa.String(64))
    candidate_patient_ids: Mapped[list[str]] = mapped_column(sa.JSON())
    # The identifiers (system|value) that matched, and what pointed where.
    reason: Mapped[str] = mapped_column(sa.Text())
    detected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    # The local patient a person chose: the remote patient is linked to it, and later pulls
    # follow that link even though another local patient holds one of its identifiers.
    resolved_patient_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="CASCADE")
    )
    resolved_by: Mapped[str | None] = mapped_column(sa.String(200))
