"""InterventionRecord -> US Core ServiceRequest (a referral or a service of the plan)."""

from __future__ import annotations

from mappings.canonical import (
    EXT_REFERRAL_OUTCOME,
    IDENTIFIER_SYSTEM,
    INTERVENTION_TYPE_SYSTEM,
    OUTCOME_NOTE_ID,
    REFERRAL_OUTCOME_SYSTEM,
    SNOMED,
    profiles_for,
)
from mappings.case_model import InterventionRecord, PerformerRecord
from mappings.concept_maps import (
    INTERVENTION_KIND,
    INTERVENTION_STATUS,
    INTERVENTION_TYPE,
    PERFORMER_KIND,
    PRIORITY,
    casebridge_display,
    us_core_category,
)
from mappings.fhir_datatypes import (
    JsonDict,
    codeable_concept,
    coding,
    compact,
    fhir_datetime,
)
from mappings.narrative import generated_narrative
from mappings.preserved_elements import restore_elements
from mappings.to_fhir.context import CaseContext
from mappings.to_fhir.element_order import element_order
from mappings.vocabulary import ReferralOutcome


def intervention_categories(intervention: InterventionRecord) -> list[JsonDict]:
    entry = INTERVENTION_TYPE[intervention.type]
    categories = [us_core_category(entry.us_core_category)] if entry.us_core_category else []
    if entry.category_code:
        categories.append({"coding": [coding(SNOMED, entry.category_code, entry.category_display)]})
    return categories


def intervention_code(intervention: InterventionRecord) -> JsonDict:
    """The intervention's own code, else the type's SNOMED procedure; then CaseBridge's type
    code, so the type round-trips; the text says what it is."""
    entry = INTERVENTION_TYPE[intervention.type]
    if intervention.code is not None:
        own = intervention.code
        codings = [coding(own.system, own.code, own.display)]
    elif entry.snomed_code:
        codings = [coding(SNOMED, entry.snomed_code, entry.snomed_display)]
    else:
        codings = []
    codings.append(coding(INTERVENTION_TYPE_SYSTEM, intervention.type.value, entry.display))
    return codeable_concept(codings, intervention.description or entry.display)


def performer_reference(performer: PerformerRecord) -> JsonDict:
    """A logical reference: the case knows the performer by name and identifier only."""
    identifier = performer.identifier
    return compact(
        type=PERFORMER_KIND.to_fhir[performer.kind],
        identifier={"system": identifier.system, "value": identifier.value} if identifier else None,
        display=performer.name,
    )


def occurrence(intervention: InterventionRecord) -> JsonDict:
    start, end = intervention.scheduled_start, intervention.scheduled_end
    if start is not None and end is None:
        return {"occurrenceDateTime": fhir_datetime(start)}
    if start is None and end is None:
        return {}
    return {
        "occurrencePeriod": compact(
            start=fhir_datetime(start) if start else None,
            end=fhir_datetime(end) if end else None,
        )
    }


def outcome_extension(outcome: ReferralOutcome) -> JsonDict:
    """The referral-outcome extension saying `outcome`."""
    display = casebridge_display("referral-outcome", outcome.value)
    return {
        "url": EXT_REFERRAL_OUTCOME,
        "valueCodeableConcept": {
            "coding": [coding(REFERRAL_OUTCOME_SYSTEM, outcome.value, display)]
        },
    }


def referral_outcome(intervention: InterventionRecord) -> list[JsonDict] | None:
    outcome = intervention.referral_outcome
    return None if outcome is None else [outcome_extension(outcome)]


def build_service_request(intervention: InterventionRecord, context: CaseContext) -> JsonDict:
    code = intervention_code(intervention)
    status = INTERVENTION_STATUS.to_fhir[intervention.status]
    return compact(
        resourceType="ServiceRequest",
        id=intervention.id,
        meta={"profile": profiles_for("ServiceRequest")},
        text=generated_narrative(
            str(code["text"]),
            [
                ("Kind", intervention.kind.value),
                ("Status", status),
                ("Performer", intervention.performer.name if intervention.performer else None),
            ],
        ),
        extension=referral_outcome(intervention),
        identifier=[{"system": IDENTIFIER_SYSTEM["ServiceRequest"], "value": intervention.id}],
        basedOn=[context.care_plan] if context.care_plan else None,
        status=status,
        intent=INTERVENTION_KIND.to_fhir[intervention.kind],
        category=intervention_categories(intervention),
        priority=PRIORITY.to_fhir[intervention.priority],
        code=code,
        subject=context.subject,
        **occurrence(intervention),
        authoredOn=fhir_datetime(intervention.authored_at) if intervention.authored_at else None,
        requester=context.who(intervention.requested_by) if intervention.requested_by else None,
        performer=[performer_reference(intervention.performer)] if intervention.performer else None,
        reasonReference=[
            {"reference": f"Condition/{need_id}"} for need_id in intervention.need_ids
        ],
        supportingInfo=[{"reference": f"Goal/{goal_id}"} for goal_id in intervention.goal_ids],
        note=[{"id": OUTCOME_NOTE_ID, "text": intervention.outcome_note}]
        if intervention.outcome_note
        else None,
    )


def service_request_resource(intervention: InterventionRecord, context: CaseContext) -> JsonDict:
    return restore_elements(
        build_service_request(intervention, context),
        intervention.fhir_extras,
        element_order("ServiceRequest"),
    )
