"""Every query of review items."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.api.pagination import fetch_page
from service.db.base import utcnow
from service.review.models import ReviewItem, ReviewSource, ReviewStatus


async def open_review_item(
    session: AsyncSession,
    *,
    source: ReviewSource,
    reason: str,
    resource_type: str,
    elements: Sequence[str],
    ehr_value: Mapping[str, Any],
    case_value: Mapping[str, Any],
    case_id: str | None = None,
    patient_id: str | None = None,
    connection_id: str | None = None,
    local_id: str | None = None,
    remote_reference: str | None = None,
) -> ReviewItem:
    """Open a review item, or refresh the open one about the same thing: the same case,
    resource (local id or remote reference), source and elements. A change refused again (the
    next push meets the same EHR edit) updates its values and reason instead of repeating it,
    so a person sees one item per undecided disagreement. Flushes; the caller commits."""
    names = sorted(set(elements))
    candidates = await session.scalars(
        select(ReviewItem).where(
            ReviewItem.status == ReviewStatus.open,
            ReviewItem.source == source,
            ReviewItem.resource_type == resource_type,
            _equals_or_null(ReviewItem.case_id, case_id),
            _equals_or_null(ReviewItem.local_id, local_id),
            _equals_or_null(ReviewItem.remote_reference, remote_reference),
        )
    )
    item = next((c for c in candidates if sorted(c.elements) == names), None)
    if item is None:
        item = ReviewItem(
            source=source,
            status=ReviewStatus.open,
            resource_type=resource_type,
            case_id=case_id,
            local_id=local_id,
            remote_reference=remote_reference,
            elements=names,
        )
        session.add(item)
    item.patient_id = patient_id if patient_id is not None else item.patient_id
    item.connection_id = connection_id if connection_id is not None else item.connection_id
    item.ehr_value = dict(ehr_value)
    item.case_value = dict(case_value)
    item.reason = reason
    item.updated_at = utcnow()
    await session.flush()
    return item


def _equals_or_null(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


async def get_review_item(
    session: AsyncSession, item_id: str, *, for_update: bool = False
) -> ReviewItem | None:
    query = select(ReviewItem).where(ReviewItem.id == item_id)
    if for_update:
        query = query.with_for_update()
    item: ReviewItem | None = await session.scalar(query)
    return item


async def list_review_items(
    session: AsyncSession,
    *,
    status: ReviewStatus | None = ReviewStatus.open,
    case_id: str | None = None,
    patient_id: str | None = None,
    connection_id: str | None = None,
    source: ReviewSource | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[Sequence[ReviewItem], str | None]:
    """A page of items, oldest first (keyset on created_at, id)."""
    query = select(ReviewItem)
    if status is not None:
        query = query.where(ReviewItem.status == status)
    if case_id is not None:
        query = query.where(ReviewItem.case_id == case_id)
    if patient_id is not None:
        query = query.where(ReviewItem.patient_id == patient_id)
    if connection_id is not None:
        query = query.where(ReviewItem.connection_id == connection_id)
    if source is not None:
        query = query.where(ReviewItem.source == source)
    return await fetch_page(session, query, ReviewItem.created_at, ReviewItem.id, cursor, limit)


async def count_open_by_source(session: AsyncSession) -> dict[ReviewSource, int]:
    """Open items per source (the metrics gauge)."""
    rows = await session.execute(
        select(ReviewItem.source, func.count())
        .where(ReviewItem.status == ReviewStatus.open)
        .group_by(ReviewItem.source)
    )
    return {ReviewSource(source): int(count) for source, count in rows}
