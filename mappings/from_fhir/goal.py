"""US Core Goal (anyone's) -> GoalRecord."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from mappings.canonical import (
    DATA_ABSENT_REASON,
    EXT_PROGRESS_ACHIEVEMENT,
    EXT_TARGET_DETAIL_TEXT,
    GOAL_ACHIEVEMENT,
    GOAL_PRIORITY,
)
from mappings.case_model import (
    GoalProgressRecord,
    GoalRecord,
    GoalTargetRecord,
    quantity_fits,
)
from mappings.concept_maps import GOAL_ACHIEVEMENT as ACHIEVEMENT_MAP
from mappings.concept_maps import GOAL_EXPRESSED_BY, GOAL_LIFECYCLE
from mappings.concept_maps import GOAL_PRIORITY as PRIORITY_MAP
from mappings.fhir_datatypes import extension_values, first_coding, parse_date, parse_datetime
from mappings.from_fhir.common import coding_record, concept_text, referenced_ids, required_code
from mappings.vocabulary import GoalAchievement, GoalExpressedBy


def _achievement(code: object) -> GoalAchievement | None:
    return ACHIEVEMENT_MAP.to_case.get(code) if isinstance(code, str) else None


def target_record(target: Mapping[str, Any]) -> GoalTargetRecord | None:
    measure = target.get("measure")
    measure_record = None
    if isinstance(measure, Mapping) and not (
        extension_values(measure, DATA_ABSENT_REASON) and "coding" not in measure
    ):
        measure_record = coding_record(measure)
    quantity = target.get("detailQuantity") or {}
    value: Decimal | None = None
    if "value" in quantity:
        try:
            value = Decimal(str(quantity["value"]))
        except InvalidOperation:
            value = None
        if value is not None and not quantity_fits(value):
            value = None  # the received target is kept verbatim (fhir_extras)
    texts = [e.get("valueString") for e in extension_values(target, EXT_TARGET_DETAIL_TEXT)]
    text = target.get("detailString") or (texts[0] if texts else None)
    record = GoalTargetRecord(
        measure=measure_record,
        detail_quantity=value,
        detail_unit=quantity.get("unit"),
        detail_text=text,
        due_date=parse_date(target.get("dueDate")),
    )
    return record if record != GoalTargetRecord() else None


def progress_record(note: Mapping[str, Any]) -> GoalProgressRecord | None:
    """A progress note needs an id and a time to be case data; others stay in the extras."""
    recorded_at = parse_datetime(note.get("time"))
    if recorded_at is None or not note.get("id") or not note.get("text"):
        return None
    achievement = [e.get("valueCode") for e in extension_values(note, EXT_PROGRESS_ACHIEVEMENT)]
    return GoalProgressRecord(
        id=str(note["id"]),
        recorded_at=recorded_at,
        recorded_by=note.get("authorString"),
        achievement_status=_achievement(achievement[0]) if achievement else None,
        note=str(note["text"]),
    )


def expressed_by_of(value: object) -> GoalExpressedBy | None:
    if not isinstance(value, Mapping):
        return None
    target = value.get("reference")
    kind = value.get("type") or (target.split("/")[0] if isinstance(target, str) else None)
    return GOAL_EXPRESSED_BY.to_case.get(kind) if isinstance(kind, str) else None


def goal_record(resource: Mapping[str, Any]) -> GoalRecord:
    """The case's view of a (validated) Goal, without extras."""
    description = resource.get("description") or {}
    achievement = first_coding(resource.get("achievementStatus"), GOAL_ACHIEVEMENT)
    priority = first_coding(resource.get("priority"), GOAL_PRIORITY)
    targets = resource.get("target") or []
    notes = [progress_record(n) for n in resource.get("note") or []]
    return GoalRecord(
        id=resource["id"],
        description=concept_text(description) or "Goal",
        code=coding_record(description),
        need_ids=referenced_ids(resource.get("addresses"), "Condition"),
        expressed_by=expressed_by_of(resource.get("expressedBy")),
        priority=PRIORITY_MAP.to_case.get(str(priority.get("code"))) if priority else None,
        lifecycle_status=required_code(resource, "lifecycleStatus", GOAL_LIFECYCLE.to_case),
        achievement_status=_achievement(achievement.get("code")) if achievement else None,
        start_date=parse_date(resource.get("startDate")),
        target=target_record(targets[0]) if targets else None,
        progress=tuple(n for n in notes if n is not None),
    )
