"""The change history of a case: every write records who changed which fields, and how."""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson
from pydantic import BaseModel

from service.auth.deps import Actor
from service.cases.models import CaseEvent
from service.db.unit_of_work import UnitOfWork


def _plain(value: Any) -> Any:
    """A JSON-safe form of a column value (dates, decimals and enums become strings)."""
    if isinstance(value, Enum):
        return value.value
    return orjson.loads(orjson.dumps(value, default=str))


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
