"""The change history of a case: every write records who changed which fields, and how."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
from pydantic import BaseModel

from service.auth.deps import Actor
from service.cases.models import CaseEvent
from service.db.unit_of_work import UnitOfWork


def _plain(value: Any) -> Any:
    """A JSON-safe form of a value: dates and times as ISO 8601 strings, decimals as strings,
    enums as their codes, models (a goal's target, a performer) as their JSON objects. Never a
    Python repr: the history is read by clients, not by Python."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return orjson.loads(orjson.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form in the case history")


def apply_changes(
    row: object, changes: BaseModel, exclude: frozenset[str] = frozenset()
) -> dict[str, list[Any]]:
    """Set the fields the client sent (bar `exclude`); return {field: [old, new]} for those
    that changed."""
    diff: dict[str, list[Any]] = {}
    for field, new in changes.model_dump(exclude_unset=True, exclude=set(exclude)).items():
        old = getattr(row, field)
        if old != new:
            setattr(row, field, new)
            diff[field] = [_plain(old), _plain(new)]
    return diff


def snapshot(changes: BaseModel) -> dict[str, list[Any]]:
    """The history entry of a creation: every field the client sent, from nothing."""
    return {k: [None, _plain(v)] for k, v in changes.model_dump(exclude_unset=True).items()}


def record_event(
    session: UnitOfWork,
    *,
    case_id: str,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: str,
    changes: dict[str, list[Any]],
) -> None:
    """Add the history entry, and note the record in the unit of work's change set (its
    commit projects it)."""
    session.changes.note_case(case_id, actor.id, entity, entity_id)
    changes = {field: [_plain(value) for value in pair] for field, pair in changes.items()}
    session.add(
        CaseEvent(
            case_id=case_id,
            actor=actor.id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            changes=changes,
        )
    )
