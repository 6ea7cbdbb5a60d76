"""Counting the rows that still refer to something, for a refusal that says what holds it: a
case's withdrawal (`service.cases.withdrawal`) or a patient's removal
(`service.patients.removal`) answers 409 with counts such as "2 goal(s) past planned", never
the rows themselves (they may hold patient data)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.base import Base


def count_of(model: type[Base], *criteria: ColumnElement[bool]) -> Select[int]:
    """`SELECT count(*) FROM model WHERE criteria`."""
    return select(func.count()).select_from(model).where(*criteria)


async def nonzero_counts(session: AsyncSession, counts: Mapping[str, Select[int]]) -> list[str]:
    """`"<n> <what>"` for each entry of `counts` (what -> a count statement) whose count is not
    zero, in their order. One statement reads them all, so they share one snapshot."""
    if not counts:
        return []
    row = (await session.execute(select(*(c.scalar_subquery() for c in counts.values())))).one()
    return [f"{number} {what}" for what, number in zip(counts, row, strict=True) if number]
