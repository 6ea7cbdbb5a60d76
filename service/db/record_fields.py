"""What every row <-> record mapper (`service/<domain>/records.py`) shares: copying the fields a
row and its record name alike, and the JSON shapes (codings, identifiers) rows keep as dicts.

A record (`mappings.case_model`) holds sequences as tuples (it is frozen); a row's JSON columns
hold lists, so a copy into a row turns tuples into lists."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from mappings.case_model import CodingRecord, IdentifierRecord

RequestT = TypeVar("RequestT", bound=BaseModel)


def same_fields(source: object, names: Iterable[str]) -> dict[str, Any]:
    """`names` read from a row or a record, ready for the other's constructor."""
    values = {name: getattr(source, name) for name in names}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def coding_record(value: dict[str, Any] | None) -> CodingRecord | None:
    return None if value is None else CodingRecord.model_validate(value)


def coding_json(record: CodingRecord | None) -> dict[str, Any] | None:
    return None if record is None else record.model_dump(exclude_none=True)


def identifier_record(value: dict[str, Any] | None) -> IdentifierRecord | None:
    return None if value is None else IdentifierRecord.model_validate(value)


def identifier_json(record: IdentifierRecord | None) -> dict[str, Any] | None:
    return None if record is None else record.model_dump()


def as_request(schema: type[RequestT], record: BaseModel, *, sent_only: bool = False) -> RequestT:
    """A received record as the `/api` request `schema` (its create or update shape), so it is
    applied through the same domain functions and rules as an `/api` request: every field the
    schema and the record both name, nested records (codings, targets, performers) included.

    An update sends every field (an absent value clears the stored one); `sent_only` leaves the
    empty ones out, as a create that takes the shape's defaults and notes only what was sent."""
    fields = record.model_dump(include=set(schema.model_fields), exclude_none=sent_only)
    return schema.model_validate(fields)


def assign_fields(row: object, record: BaseModel, names: Iterable[str]) -> None:
    """Set on an existing row the fields a received record carries but `/api`'s request shapes
    do not (kept foreign content, the sender's own dates): after the shape went through the
    domain rules, these follow as received."""
    for name, value in same_fields(record, names).items():
        setattr(row, name, value)
