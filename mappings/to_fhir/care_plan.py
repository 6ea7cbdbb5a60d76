"""CaseRecord -> US Core CarePlan: the case itself, pointing at its Conditions, Goals,
ServiceRequests and CareTeam.

Check-ins and transitions have no resource of their own: they are simple planned activities
(`activity.detail`), their code in CaseBridge's own CodeSystems. Case data US Core has no
element for (the exact case status, priority, closure reason, the assessments) is carried in
CaseBridge extensions.
"""

from __future__ import annotations

from mappings.canonical import (
    CARE_SETTING_SYSTEM,
    CHECK_IN_MODE_SYSTEM,
    EXT_ASSESSMENT,
    EXT_CASE_PRIORITY,
    EXT_CASE_STATUS,
    EXT_CHECK_IN_GOAL_PROGRESS,
    EXT_CLOSURE_REASON,
    EXT_TRANSITION,
    IDENTIFIER_SYSTEM,
    PROGRAM_SYSTEM,
    TRANSITION_KIND_SYSTEM,
    US_CORE_CAREPLAN_CATEGORY,
    profiles_for,
)
from mappings.case_model import (
    AssessmentRecord,
    CaseRecord,
    CheckInRecord,
    NoteRecord,
    TransitionRecord,
)
from mappings.concept_maps import CASE_STATUS, CHECK_IN_MODE, TRANSITION_STATUS, casebridge_display
from mappings.fhir_datatypes import (
    JsonDict,
    coding,
    compact,
    fhir_date,
    fhir_datetime,
)
from mappings.narrative import generated_narrative
from mappings.preserved_elements import restore_elements
from mappings.to_fhir.context import CaseContext, care_team_id
from mappings.to_fhir.element_order import element_order
from mappings.vocabulary import CareSetting

ASSESS_PLAN: JsonDict = {"coding": [{"system": US_CORE_CAREPLAN_CATEGORY, "code": "assess-plan"}]}


def program_category(case: CaseRecord) -> JsonDict:
    display = casebridge_display("program", case.program.value)
    return {"coding": [coding(PROGRAM_SYSTEM, case.program.value, display)]}


def case_extensions(case: CaseRecord) -> list[JsonDict]:
    extensions = [
        {"url": EXT_CASE_STATUS, "valueCode": case.status.value},
        {"url": EXT_CASE_PRIORITY, "valueCode": case.priority.value},
    ]
    if case.closure_reason is not None:
        extensions.append({"url": EXT_CLOSURE_REASON, "valueCode": case.closure_reason.value})
    extensions += [assessment_extension(a) for a in case.assessments]
    return extensions


def assessment_extension(assessment: AssessmentRecord) -> JsonDict:
    """An assessment as a complex extension; its element id is the assessment id."""
    parts: list[JsonDict] = [
        {"url": "kind", "valueCode": assessment.kind.value},
        {"url": "performedAt", "valueDateTime": fhir_datetime(assessment.performed_at)},
    ]
    if assessment.performed_by:
        parts.append({"url": "performedBy", "valueString": assessment.performed_by})
    if assessment.summary:
        parts.append({"url": "summary", "valueString": assessment.summary})
    parts += [{"url": "strength", "valueString": s} for s in assessment.strengths]
    parts += [{"url": "preference", "valueString": p} for p in assessment.preferences]
    parts += [
        {
            "url": "risk",
            "id": risk.id,
            "extension": [
                {"url": "description", "valueString": risk.description},
                {"url": "level", "valueCode": risk.level.value},
            ],
        }
        for risk in assessment.risks
    ]
    parts += [
        {"url": "need", "valueReference": {"reference": f"Condition/{need_id}"}}
        for need_id in assessment.need_ids
    ]
    return {"url": EXT_ASSESSMENT, "id": assessment.id, "extension": parts}


def setting_coding(setting: CareSetting) -> JsonDict:
    return coding(CARE_SETTING_SYSTEM, setting.value, casebridge_display("care-setting", setting))


def check_in_activity(check_in: CheckInRecord, context: CaseContext) -> JsonDict:
    mode = check_in.mode
    detail = compact(
        extension=[
            {"url": EXT_CHECK_IN_GOAL_PROGRESS, "valueId": progress_id}
            for progress_id in check_in.goal_progress_ids
        ],
        kind=CHECK_IN_MODE.to_fhir[mode],
        code={
            "coding": [
                coding(CHECK_IN_MODE_SYSTEM, mode.value, casebridge_display("check-in-mode", mode))
            ]
        },
        status="completed",
        scheduledPeriod={"start": fhir_datetime(check_in.occurred_at)},
        performer=[context.who(check_in.performed_by)] if check_in.performed_by else None,
        description=check_in.notes,
    )
    return {"id": check_in.id, "detail": detail}


def transition_activity(transition: TransitionRecord) -> JsonDict:
    kind = casebridge_display("transition-kind", transition.kind.value)
    parts: list[JsonDict] = [
        {"url": "from", "valueCoding": setting_coding(transition.from_setting)},
        {"url": "to", "valueCoding": setting_coding(transition.to_setting)},
    ]
    if transition.actual_date:
        parts.append({"url": "actualDate", "valueDate": fhir_date(transition.actual_date)})
    parts += [{"url": "followUp", "valueString": f} for f in transition.follow_ups]
    frm = casebridge_display("care-setting", transition.from_setting)
    to = casebridge_display("care-setting", transition.to_setting)
    detail = compact(
        extension=[{"url": EXT_TRANSITION, "extension": parts}],
        code={"coding": [coding(TRANSITION_KIND_SYSTEM, transition.kind.value, kind)]},
        status=TRANSITION_STATUS.to_fhir[transition.status],
        scheduledPeriod={"start": fhir_date(transition.planned_date)}
        if transition.planned_date
        else None,
        description=f"{kind}: {frm} to {to}",
    )
    return {"id": transition.id, "detail": detail}


def plan_note(note: NoteRecord) -> JsonDict:
    return compact(
        id=note.id, authorString=note.author, time=fhir_datetime(note.created_at), text=note.text
    )


def care_plan_narrative(case: CaseRecord, status: str, context: CaseContext) -> JsonDict:
    return generated_narrative(
        case.title or "Case management plan",
        [
            ("Program", casebridge_display("program", case.program.value)),
            ("Case status", casebridge_display("case-status", case.status.value)),
            ("Plan status", status),
            ("Case manager", context.who(case.manager).get("display") if case.manager else None),
        ],
        [
            ("Needs", [n.description for n in case.needs]),
            ("Goals", [g.description for g in case.goals]),
            ("Interventions", [i.description or i.type.value for i in case.interventions]),
        ],
    )


def build_care_plan(case: CaseRecord, context: CaseContext) -> JsonDict:
    status = CASE_STATUS.to_fhir[case.status]
    meta = compact(
        lastUpdated=fhir_datetime(case.updated_at) if case.updated_at else None,
        profile=profiles_for("CarePlan"),
    )
    care_team = [{"reference": f"CareTeam/{care_team_id(case.id)}"}] if case.care_team else None
    activities = [
        {"reference": {"reference": f"ServiceRequest/{i.id}"}} for i in case.interventions
    ]
    activities += [check_in_activity(c, context) for c in case.check_ins]
    activities += [transition_activity(t) for t in case.transitions]
    return compact(
        resourceType="CarePlan",
        id=case.id,
        meta=meta,
        text=care_plan_narrative(case, status, context),
        extension=case_extensions(case),
        identifier=[{"system": IDENTIFIER_SYSTEM["CarePlan"], "value": case.id}],
        status=status,
        intent="plan",
        category=[ASSESS_PLAN, program_category(case)],
        title=case.title,
        subject=context.subject,
        period=compact(
            start=fhir_datetime(case.opened_at),
            end=fhir_datetime(case.closed_at) if case.closed_at else None,
        ),
        author=context.who(case.manager) if case.manager else None,
        contributor=care_team,
        careTeam=care_team,
        addresses=[{"reference": f"Condition/{n.id}"} for n in case.needs],
        goal=[{"reference": f"Goal/{g.id}"} for g in case.goals],
        activity=activities,
        note=[plan_note(n) for n in case.notes],
    )


def care_plan_resource(case: CaseRecord, context: CaseContext) -> JsonDict:
    extras = case.fhir_extras.get("CarePlan") or {}
    return restore_elements(build_care_plan(case, context), extras, element_order("CarePlan"))
