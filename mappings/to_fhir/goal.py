"""GoalRecord -> US Core Goal."""

from __future__ import annotations

from mappings.canonical import (
    DATA_ABSENT_REASON,
    EXT_PROGRESS_ACHIEVEMENT,
    EXT_TARGET_DETAIL_TEXT,
    GOAL_ACHIEVEMENT,
    GOAL_PRIORITY,
    IDENTIFIER_SYSTEM,
    profiles_for,
)
from mappings.case_model import GoalProgressRecord, GoalRecord, GoalTargetRecord
from mappings.concept_maps import (
    GOAL_ACHIEVEMENT as ACHIEVEMENT_MAP,
)
from mappings.concept_maps import (
    GOAL_EXPRESSED_BY,
    GOAL_LIFECYCLE,
)
from mappings.concept_maps import (
    GOAL_PRIORITY as PRIORITY_MAP,
)
from mappings.fhir_datatypes import (
    JsonDict,
    codeable_concept,
    coding,
    compact,
    fhir_date,
    fhir_datetime,
    fhir_decimal,
    reference,
)
from mappings.narrative import generated_narrative
from mappings.preserved_elements import restore_elements
from mappings.to_fhir.context import CaseContext
from mappings.to_fhir.element_order import element_order
from mappings.to_fhir.people import is_actor
from mappings.vocabulary import GoalExpressedBy

MEASURE_ABSENT: JsonDict = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}


def goal_target(target: GoalTargetRecord) -> JsonDict:
    """One Goal.target.

    detail[x] holds one value: a quantity, else the text; when the case has both, the text rides
    in an extension. gol-1 wants a measure whenever there is a detail: if the case has none, the
    measure says so with a data-absent-reason instead of inventing a code.
    """
    measure = target.measure
    detail: JsonDict = {}
    extension: list[JsonDict] = []
    if target.detail_quantity is not None:
        detail["detailQuantity"] = compact(
            value=fhir_decimal(target.detail_quantity), unit=target.detail_unit
        )
        if target.detail_text is not None:
            extension.append({"url": EXT_TARGET_DETAIL_TEXT, "valueString": target.detail_text})
    elif target.detail_text is not None:
        detail["detailString"] = target.detail_text
    if measure is not None:
        measure_concept: JsonDict | None = codeable_concept(
            [coding(measure.system, measure.code, measure.display)]
        )
    elif detail:
        measure_concept = MEASURE_ABSENT
    else:
        measure_concept = None
    return compact(
        extension=extension,
        measure=measure_concept,
        **detail,
        dueDate=fhir_date(target.due_date) if target.due_date else None,
    )


def progress_note(progress: GoalProgressRecord) -> JsonDict:
    achievement = progress.achievement_status
    return compact(
        id=progress.id,
        extension=[
            {"url": EXT_PROGRESS_ACHIEVEMENT, "valueCode": ACHIEVEMENT_MAP.to_fhir[achievement]}
        ]
        if achievement
        else None,
        authorString=progress.recorded_by,
        time=fhir_datetime(progress.recorded_at),
        text=progress.note,
    )


def expressed_by(who: GoalExpressedBy, context: CaseContext) -> JsonDict:
    """The patient by reference; the case manager by reference to their Practitioner where
    they have one (`mappings.to_fhir.people`); others by type and display. Goal.expressedBy
    allows no Organization, so a manager that is an actor without an identity is named by the
    type's display, never by the actor id."""
    if who is GoalExpressedBy.patient:
        return context.subject
    resource_type = GOAL_EXPRESSED_BY.to_fhir[who]
    display = context.manager if who is GoalExpressedBy.case_manager else None
    if display is not None and is_actor(display):
        who_acts = context.who(display)
        if who_acts.get("type") == resource_type:
            return who_acts
        display = None
    return reference(
        display=display or GOAL_EXPRESSED_BY.display[resource_type], type_=resource_type
    )


def build_goal(goal: GoalRecord, context: CaseContext) -> JsonDict:
    lifecycle = GOAL_LIFECYCLE.to_fhir[goal.lifecycle_status]
    achievement = (
        ACHIEVEMENT_MAP.to_fhir[goal.achievement_status] if goal.achievement_status else None
    )
    priority = PRIORITY_MAP.to_fhir[goal.priority] if goal.priority else None
    code = goal.code
    return compact(
        resourceType="Goal",
        id=goal.id,
        meta={"profile": profiles_for("Goal")},
        text=generated_narrative(
            goal.description,
            [
                ("Lifecycle", lifecycle),
                ("Achievement", ACHIEVEMENT_MAP.display[achievement] if achievement else None),
                (
                    "Due",
                    fhir_date(goal.target.due_date)
                    if goal.target and goal.target.due_date
                    else None,
                ),
            ],
        ),
        identifier=[{"system": IDENTIFIER_SYSTEM["Goal"], "value": goal.id}],
        lifecycleStatus=lifecycle,
        achievementStatus={
            "coding": [coding(GOAL_ACHIEVEMENT, achievement, ACHIEVEMENT_MAP.display[achievement])]
        }
        if achievement
        else None,
        priority={"coding": [coding(GOAL_PRIORITY, priority, PRIORITY_MAP.display[priority])]}
        if priority
        else None,
        description=codeable_concept(
            [coding(code.system, code.code, code.display)] if code else [], goal.description
        ),
        subject=context.subject,
        startDate=fhir_date(goal.start_date) if goal.start_date else None,
        target=[target] if goal.target and (target := goal_target(goal.target)) else None,
        expressedBy=expressed_by(goal.expressed_by, context) if goal.expressed_by else None,
        addresses=[{"reference": f"Condition/{need_id}"} for need_id in goal.need_ids],
        note=[progress_note(p) for p in goal.progress],
    )


def goal_resource(goal: GoalRecord, context: CaseContext) -> JsonDict:
    return restore_elements(build_goal(goal, context), goal.fhir_extras, element_order("Goal"))
