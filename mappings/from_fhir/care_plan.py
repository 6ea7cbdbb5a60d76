"""US Core CarePlan (anyone's) -> the plan-level part of a CaseRecord.

The plan's own data (status, program, period, manager, assessments, check-ins, transitions,
notes) becomes case data; its links to Conditions, Goals, ServiceRequests and the CareTeam are
case data only for the resources imported with it (`import_case`), and kept as received
otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from mappings.canonical import (
    CARE_SETTING_SYSTEM,
    CHECK_IN_MODE_SYSTEM,
    EXT_ASSESSMENT,
    EXT_CASE_PRIORITY,
    EXT_CASE_STATUS,
    EXT_CHECK_IN_GOAL_PROGRESS,
    EXT_CLOSURE_REASON,
    EXT_TRANSITION,
    PROGRAM_SYSTEM,
    TRANSITION_KIND_SYSTEM,
)
from mappings.case_model import (
    AssessmentRecord,
    CheckInRecord,
    NoteRecord,
    PatientRecord,
    RiskRecord,
    TransitionRecord,
)
from mappings.concept_maps import CASE_STATUS, TRANSITION_STATUS
from mappings.fhir_datatypes import (
    codes_of,
    extension_values,
    first_coding,
    parse_date,
    parse_datetime,
)
from mappings.from_fhir.common import display_of, required_code
from mappings.from_fhir.rejection import reject
from mappings.to_fhir.context import CaseContext
from mappings.vocabulary import (
    AssessmentKind,
    CareSetting,
    CaseStatus,
    CheckInMode,
    ClosureReason,
    Priority,
    Program,
    RiskLevel,
    TransitionKind,
)

DEFAULT_PROGRAM = Program.nursing
"""A plan from elsewhere names no CaseBridge program: it is filed under nursing case management."""


def _parts(extension: Mapping[str, Any], url: str) -> list[Mapping[str, Any]]:
    return extension_values(extension, url)


def _code(enum: type[Any], value: object) -> Any:
    return enum(value) if isinstance(value, str) and value in enum.__members__ else None


def assessment_record(extension: Mapping[str, Any]) -> AssessmentRecord | None:
    kind = _code(
        AssessmentKind, next((p.get("valueCode") for p in _parts(extension, "kind")), None)
    )
    performed = [parse_datetime(p.get("valueDateTime")) for p in _parts(extension, "performedAt")]
    if kind is None or not performed or performed[0] is None or not extension.get("id"):
        return None
    risks = []
    for risk in _parts(extension, "risk"):
        description = [p.get("valueString") for p in _parts(risk, "description")]
        level = [_code(RiskLevel, p.get("valueCode")) for p in _parts(risk, "level")]
        if risk.get("id") and description and level and level[0] is not None:
            risks.append(RiskRecord(id=risk["id"], description=description[0], level=level[0]))
    needs = [p.get("valueReference", {}).get("reference", "") for p in _parts(extension, "need")]
    strings = {
        name: [str(p.get("valueString")) for p in _parts(extension, name)]
        for name in ("performedBy", "summary", "strength", "preference")
    }
    return AssessmentRecord(
        id=extension["id"],
        kind=kind,
        performed_at=performed[0],
        performed_by=strings["performedBy"][0] if strings["performedBy"] else None,
        summary=strings["summary"][0] if strings["summary"] else None,
        strengths=tuple(strings["strength"]),
        preferences=tuple(strings["preference"]),
        risks=tuple(risks),
        need_ids=tuple(n.removeprefix("Condition/") for n in needs if n.startswith("Condition/")),
    )


def check_in_record(activity: Mapping[str, Any]) -> CheckInRecord | None:
    detail = activity.get("detail") or {}
    mode = first_coding(detail.get("code"), CHECK_IN_MODE_SYSTEM)
    occurred = parse_datetime((detail.get("scheduledPeriod") or {}).get("start"))
    if mode is None or occurred is None or not activity.get("id"):
        return None
    check_in_mode = _code(CheckInMode, mode.get("code"))
    if check_in_mode is None:
        return None
    performers = detail.get("performer") or []
    return CheckInRecord(
        id=activity["id"],
        occurred_at=occurred,
        mode=check_in_mode,
        performed_by=display_of(performers[0]) if performers else None,
        notes=detail.get("description"),
        goal_progress_ids=tuple(
            str(e.get("valueId")) for e in extension_values(detail, EXT_CHECK_IN_GOAL_PROGRESS)
        ),
    )


def transition_record(activity: Mapping[str, Any]) -> TransitionRecord | None:
    detail = activity.get("detail") or {}
    kind = first_coding(detail.get("code"), TRANSITION_KIND_SYSTEM)
    parts = extension_values(detail, EXT_TRANSITION)
    if kind is None or not parts or not activity.get("id"):
        return None
    settings = {
        name: [p.get("valueCoding", {}) for p in _parts(parts[0], name)] for name in ("from", "to")
    }
    origin = [
        _code(CareSetting, c.get("code"))
        for c in settings["from"]
        if c.get("system") == CARE_SETTING_SYSTEM
    ]
    destination = [
        _code(CareSetting, c.get("code"))
        for c in settings["to"]
        if c.get("system") == CARE_SETTING_SYSTEM
    ]
    transition_kind = _code(TransitionKind, kind.get("code"))
    if (
        transition_kind is None
        or not origin
        or not destination
        or None in (origin[0], destination[0])
    ):
        return None
    actual = [parse_date(p.get("valueDate")) for p in _parts(parts[0], "actualDate")]
    status = TRANSITION_STATUS.to_case.get(detail.get("status", ""))
    return TransitionRecord(
        id=activity["id"],
        kind=transition_kind,
        from_setting=origin[0],
        to_setting=destination[0],
        planned_date=parse_date((detail.get("scheduledPeriod") or {}).get("start")),
        actual_date=actual[0] if actual else None,
        status=status or TRANSITION_STATUS.to_case["scheduled"],
        follow_ups=tuple(str(p.get("valueString")) for p in _parts(parts[0], "followUp")),
    )


def note_record(note: Mapping[str, Any]) -> NoteRecord | None:
    created = parse_datetime(note.get("time"))
    if created is None or not note.get("id"):
        return None
    return NoteRecord(
        id=note["id"], author=note.get("authorString"), text=note["text"], created_at=created
    )


def patient_stub(context: CaseContext) -> PatientRecord:
    """The patient as a plan names it: the service links it to its own patient record."""
    name = context.patient_name or ""
    given, _, family = name.rpartition(" ")
    return PatientRecord(
        id=context.patient_id or "unknown",
        given_name=given or None,
        family_name=family or None,
    )


def plan_fields(resource: Mapping[str, Any], received_at: dt.datetime) -> dict[str, Any]:
    """CaseRecord fields from a (validated) CarePlan; `received_at` opens a plan with no date."""
    own_status = [
        _code(CaseStatus, e.get("valueCode")) for e in extension_values(resource, EXT_CASE_STATUS)
    ]
    status = (
        own_status[0]
        if own_status and own_status[0]
        else required_code(resource, "status", CASE_STATUS.to_case)
    )
    if status is CaseStatus.entered_in_error:
        # Only a DELETE of the CarePlan withdraws a case (service/cases/withdrawal.py): its
        # resources are then gone, not kept with this status (FHIR R4 http.html#delete).
        raise reject(
            "CarePlan.status",
            "a case entered in error is withdrawn by deleting its CarePlan (DELETE); a case "
            "that ended otherwise is closed with status completed or revoked",
            "business-rule",
        )
    priority = [
        _code(Priority, e.get("valueCode")) for e in extension_values(resource, EXT_CASE_PRIORITY)
    ]
    closure = [
        _code(ClosureReason, e.get("valueCode"))
        for e in extension_values(resource, EXT_CLOSURE_REASON)
    ]
    programs = [
        Program(c)
        for c in codes_of(resource.get("category"), PROGRAM_SYSTEM)
        if c in Program.__members__
    ]
    period = resource.get("period") or {}
    opened = parse_datetime(period.get("start")) or parse_datetime(resource.get("created"))
    activities = resource.get("activity") or []
    check_ins = [check_in_record(a) for a in activities]
    transitions = [transition_record(a) for a in activities]
    assessments = [assessment_record(e) for e in extension_values(resource, EXT_ASSESSMENT)]
    notes = [note_record(n) for n in resource.get("note") or []]
    return {
        "id": resource["id"],
        "program": programs[0] if programs else DEFAULT_PROGRAM,
        "title": resource.get("title"),
        "manager": display_of(resource.get("author")),
        "priority": priority[0] if priority and priority[0] else Priority.routine,
        "status": status,
        "closure_reason": closure[0] if closure else None,
        "opened_at": opened or received_at,
        "closed_at": parse_datetime(period.get("end")),
        "updated_at": parse_datetime((resource.get("meta") or {}).get("lastUpdated")),
        "assessments": tuple(a for a in assessments if a is not None),
        "check_ins": tuple(c for c in check_ins if c is not None),
        "transitions": tuple(t for t in transitions if t is not None),
        "notes": tuple(n for n in notes if n is not None),
    }
