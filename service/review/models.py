"""The review item: an inbound change (an EHR's edit, a resolution, a pulled or received
record) that the domain rules did not let the case take. It holds what a person needs to decide:
the resource and its elements, the sender's values, the case's values, and why it was refused.

Nothing inbound ends as a log line only: what the case cannot take is one of these, and it stays
`open` until a person applies the sender's value (through the domain rules again), keeps the
case's value, or dismisses it.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, enum_column, new_id, utcnow


class ReviewSource(StrEnum):
    """Which inbound path could not apply the change."""

    pull = "pull"  # a pull (or scheduled refresh) of an open case's linked records
    merge = "merge"  # an EHR edit met by a push (412, three-way merge)
    resolution = "resolution"  # a person's resolution of a push conflict
    notification = "notification"  # a status or outcome the receiver sent back
    intake = "intake"  # opening a case from EHR data


class ReviewStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class ReviewDecision(StrEnum):
    apply_ehr_value = "apply-ehr-value"  # the sender's values go to the case, through the rules
    keep_case_value = "keep-case-value"  # the case keeps its values
    dismissed = "dismissed"  # nothing to do (obsolete, or handled elsewhere)


class ReviewItem(Base):
    __tablename__ = "review_items"
    # The list (open items, oldest first) and the de-duplication lookup of a case's items.
    __table_args__ = (
        sa.Index("ix_review_items_status_created", "status", "created_at", "id"),
        sa.Index("ix_review_items_case_status", "case_id", "status"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    case_id: Mapped[str | None] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    patient_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("ehr_connections.id", ondelete="SET NULL"), index=True
    )
    resource_type: Mapped[str] = mapped_column(sa.String(40))
    local_id: Mapped[str | None] = mapped_column(sa.String(64))
    # `Type/<id>` on the sender's side (the EHR's copy), when there is one.
    remote_reference: Mapped[str | None] = mapped_column(sa.String(200))
    # Top-level element names, sorted.
    elements: Mapped[list[str]] = mapped_column(default=list)
    # element -> the sender's value (its own form; an element it removed is absent).
    ehr_value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # element -> the case's value when the item was opened (absent: the case has none).
    case_value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[ReviewSource] = mapped_column(enum_column(ReviewSource))
    status: Mapped[ReviewStatus] = mapped_column(
        enum_column(ReviewStatus), default=ReviewStatus.open
    )
    decision: Mapped[ReviewDecision | None] = mapped_column(enum_column(ReviewDecision))
    decided_by: Mapped[str | None] = mapped_column(sa.String(500))
    decided_at: Mapped[dt.datetime | None]
    note: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
