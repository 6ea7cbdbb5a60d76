"""US Core ServiceRequest (anyone's) -> InterventionRecord."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.canonical import (
    EXT_REFERRAL_OUTCOME,
    INTERVENTION_TYPE_SYSTEM,
    OUTCOME_NOTE_ID,
    REFERRAL_OUTCOME_SYSTEM,
    SNOMED,
)
from mappings.case_model import CodingRecord, IdentifierRecord, InterventionRecord, PerformerRecord
from mappings.concept_maps import (
    INTERVENTION_KIND,
    INTERVENTION_STATUS,
    INTERVENTION_TYPE,
    INTERVENTION_TYPE_BY_SNOMED,
    PERFORMER_KIND,
    PRIORITY,
)
from mappings.fhir_datatypes import extension_values, first_coding, parse_datetime
from mappings.from_fhir.common import (
    coding_record,
    concept_text,
    display_of,
    referenced_ids,
    required_code,
)
from mappings.vocabulary import InterventionType, PerformerKind, Priority, ReferralOutcome


def intervention_type(code: object) -> InterventionType:
    """CaseBridge's type code, else the type whose SNOMED code the request carries, else
    `other` (the received code is kept either way)."""
    own = first_coding(code, INTERVENTION_TYPE_SYSTEM)
    if own is not None and own.get("code") in InterventionType.__members__:
        return InterventionType(own["code"])
    if isinstance(code, Mapping):
        for item in code.get("coding") or ():
            if item.get("system") == SNOMED and item.get("code") in INTERVENTION_TYPE_BY_SNOMED:
                return INTERVENTION_TYPE_BY_SNOMED[item["code"]]
    return InterventionType.other


def own_code(code: object, kind: InterventionType) -> CodingRecord | None:
    """The first coding that is neither CaseBridge's type code nor the type's default code."""
    if not isinstance(code, Mapping):
        return None
    default = INTERVENTION_TYPE[kind].snomed_code
    for item in code.get("coding") or ():
        if item.get("system") == INTERVENTION_TYPE_SYSTEM:
            continue
        if item.get("system") == SNOMED and item.get("code") == default:
            return None
        return coding_record({"coding": [item]})
    return None


def performer_record(performer: object) -> PerformerRecord | None:
    if not isinstance(performer, Mapping):
        return None
    target = performer.get("reference")
    kind_name = performer.get("type") or (target.split("/")[0] if isinstance(target, str) else None)
    kind = PERFORMER_KIND.to_case.get(kind_name) if isinstance(kind_name, str) else None
    identifier = performer.get("identifier") or {}
    name = display_of(performer)
    if name is None:
        return None
    return PerformerRecord(
        kind=kind or PerformerKind.practitioner,
        name=name,
        identifier=IdentifierRecord(system=identifier["system"], value=identifier["value"])
        if identifier.get("system") and identifier.get("value")
        else None,
    )


def referral_outcome(resource: Mapping[str, Any]) -> ReferralOutcome | None:
    for extension in extension_values(resource, EXT_REFERRAL_OUTCOME):
        found = first_coding(extension.get("valueCodeableConcept"), REFERRAL_OUTCOME_SYSTEM)
        if found and found.get("code") in ReferralOutcome.__members__:
            return ReferralOutcome(found["code"])
    return None


def outcome_note(notes: object) -> str | None:
    """The case's outcome note among a ServiceRequest's annotations: the one with its id, else a
    lone annotation of text alone (how the case wrote it before it had an id). Any other note is
    the receiver's or the EHR's: kept in the record's `fhir_extras` (and on the EHR), never
    taken for the case's own."""
    annotations = [n for n in notes if isinstance(n, Mapping)] if isinstance(notes, list) else []
    for note in annotations:
        if note.get("id") == OUTCOME_NOTE_ID and isinstance(note.get("text"), str):
            return str(note["text"])
    if len(annotations) == 1 and set(annotations[0]) == {"text"}:
        return str(annotations[0]["text"])
    return None


def intervention_record(resource: Mapping[str, Any]) -> InterventionRecord:
    """The case's view of a (validated) ServiceRequest, without extras."""
    code = resource.get("code")
    kind = intervention_type(code)
    own = own_code(code, kind)
    period = resource.get("occurrencePeriod") or {}
    start = parse_datetime(resource.get("occurrenceDateTime")) or parse_datetime(
        period.get("start")
    )
    performers = resource.get("performer") or []
    return InterventionRecord(
        id=resource["id"],
        kind=required_code(resource, "intent", INTERVENTION_KIND.to_case),
        type=kind,
        description=concept_text(code),
        code=own,
        performer=performer_record(performers[0]) if performers else None,
        status=required_code(resource, "status", INTERVENTION_STATUS.to_case),
        priority=required_code(resource, "priority", PRIORITY.to_case)
        if "priority" in resource
        else Priority.routine,
        scheduled_start=start,
        scheduled_end=parse_datetime(period.get("end")),
        authored_at=parse_datetime(resource.get("authoredOn")),
        requested_by=display_of(resource.get("requester")),
        goal_ids=referenced_ids(resource.get("supportingInfo"), "Goal"),
        need_ids=referenced_ids(resource.get("reasonReference"), "Condition"),
        referral_outcome=referral_outcome(resource),
        outcome_note=outcome_note(resource.get("note")),
    )
