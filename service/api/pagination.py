"""Cursor pagination: keyset on (created_at, id), so pages stay stable while rows are added."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Generic, Protocol, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from service.errors import BadRequest


class Keyed(Protocol):
    id: Any
    created_at: Any


ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT", bound=Keyed)


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = None


def encode_cursor(created_at: dt.datetime, row_id: str) -> str:
    raw = orjson.dumps([created_at.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = orjson.loads(raw)
        return dt.datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError) as exc:
        raise BadRequest("cursor is not one this service issued") from exc


async def fetch_page(
    session: AsyncSession,
    statement: Select[RowT],
    created_at: InstrumentedAttribute[dt.datetime],
    row_id: InstrumentedAttribute[str],
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[RowT], str | None]:
    if cursor is not None:
        after_created, after_id = decode_cursor(cursor)
        statement = statement.where(
            or_(created_at > after_created, and_(created_at == after_created, row_id > after_id))
        )
    rows = (await session.scalars(statement.order_by(created_at, row_id).limit(limit + 1))).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_at, last.id)


Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
