"""Goals (with their progress) and interventions <-> their records (`mappings.case_model`),
both ways, in one place: the import of a received case, the read for the projection and the
update from a received Goal or ServiceRequest all go through here.

Each direction reads the `*_SAME` tuple (fields the row and the record name alike); what
differs in shape (codings kept as JSON, a goal's target and an intervention's performer kept
as flat columns, links kept as relationships) is mapped by hand next to it.
`tests/fhir_store/test_record_mappers.py` fails when a column or a record field is mapped in
neither."""

from __future__ import annotations

from collections.abc import Sequence

from mappings.case_model import (
    GoalProgressRecord,
    GoalRecord,
    GoalTargetRecord,
    InterventionRecord,
    PerformerRecord,
)
from service.assessments.models import Need
from service.db.record_fields import (
    as_request,
    coding_json,
    coding_record,
    identifier_json,
    identifier_record,
    same_fields,
)
from service.plans.models import Goal, GoalProgress, Intervention
from service.plans.schemas import GoalCreate, GoalUpdate, InterventionCreate, InterventionUpdate

GOAL_SAME = (
    "id",
    "description",
    "expressed_by",
    "priority",
    "lifecycle_status",
    "achievement_status",
    "start_date",
    "fhir_extras",
)
# GoalTargetRecord field -> its column is `target_<field>` (the measure, a coding, by hand).
TARGET_SAME = ("detail_quantity", "detail_unit", "detail_text", "due_date")
PROGRESS_SAME = ("id", "recorded_at", "recorded_by", "achievement_status", "note")
INTERVENTION_SAME = (
    "id",
    "kind",
    "type",
    "description",
    "status",
    "priority",
    "scheduled_start",
    "scheduled_end",
    "authored_at",
    "requested_by",
    "referral_outcome",
    "outcome_note",
    "fhir_extras",
)
# What a received Goal or ServiceRequest sets that `/api`'s update shapes do not carry.
GOAL_RECEIVED = ("fhir_extras",)
INTERVENTION_RECEIVED = ("fhir_extras", "authored_at")


def goal_record(row: Goal) -> GoalRecord:
    """Needs `Goal.needs` and `Goal.progress` loaded."""
    target = None
    if row.target is not None:
        target = GoalTargetRecord(
            measure=coding_record(row.target_measure),
            **{name: getattr(row, f"target_{name}") for name in TARGET_SAME},
        )
    return GoalRecord(
        **same_fields(row, GOAL_SAME),
        code=coding_record(row.code),
        need_ids=tuple(row.need_ids),
        target=target,
        progress=tuple(GoalProgressRecord(**same_fields(p, PROGRESS_SAME)) for p in row.progress),
    )


def new_goal(
    record: GoalRecord, case_id: str, needs: Sequence[Need], check_in_of: dict[str, str]
) -> Goal:
    """`needs`: the rows of `record.need_ids`; `check_in_of`: progress id -> the check-in that
    recorded it."""
    target = record.target
    return Goal(
        **same_fields(record, GOAL_SAME),
        case_id=case_id,
        code=coding_json(record.code),
        target_measure=coding_json(target.measure) if target else None,
        **{f"target_{name}": getattr(target, name) if target else None for name in TARGET_SAME},
        needs=list(needs),
        progress=[
            GoalProgress(**same_fields(p, PROGRESS_SAME), check_in_id=check_in_of.get(p.id))
            for p in record.progress
        ],
    )


def goal_create(record: GoalRecord) -> GoalCreate:
    """A received goal as `/api`'s create shape, so `plans.service.add_goal` applies it."""
    return as_request(GoalCreate, record, sent_only=True)


def goal_update(record: GoalRecord) -> GoalUpdate:
    """A received goal as `/api`'s update shape, so `plans.service.change_goal` applies it."""
    return as_request(GoalUpdate, record)


def intervention_record(row: Intervention) -> InterventionRecord:
    """Needs `Intervention.goals` and `Intervention.needs` loaded."""
    performer = None
    if row.performer_kind is not None and row.performer_name is not None:
        performer = PerformerRecord(
            kind=row.performer_kind,
            name=row.performer_name,
            identifier=identifier_record(row.performer_identifier),
        )
    return InterventionRecord(
        **same_fields(row, INTERVENTION_SAME) | {"authored_at": row.authored_at or row.created_at},
        code=coding_record(row.code),
        performer=performer,
        goal_ids=tuple(row.goal_ids),
        need_ids=tuple(row.need_ids),
    )


def new_intervention(
    record: InterventionRecord, case_id: str, goals: Sequence[Goal], needs: Sequence[Need]
) -> Intervention:
    """`goals` and `needs`: the rows of `record.goal_ids` and `record.need_ids`."""
    performer = record.performer
    return Intervention(
        **same_fields(record, INTERVENTION_SAME),
        case_id=case_id,
        code=coding_json(record.code),
        performer_kind=performer.kind if performer else None,
        performer_name=performer.name if performer else None,
        performer_identifier=identifier_json(performer.identifier) if performer else None,
        goals=list(goals),
        needs=list(needs),
    )


def intervention_create(record: InterventionRecord) -> InterventionCreate:
    """A received intervention as `/api`'s create shape (`plans.service.add_intervention`)."""
    return as_request(InterventionCreate, record, sent_only=True)


def intervention_update(record: InterventionRecord) -> InterventionUpdate:
    """A received intervention as `/api`'s update shape (`plans.service.change_intervention`)."""
    return as_request(InterventionUpdate, record)
