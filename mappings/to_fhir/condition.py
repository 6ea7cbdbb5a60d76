"""NeedRecord -> US Core Condition (Problems and Health Concerns), category health-concern."""

from __future__ import annotations

from mappings.canonical import (
    CONDITION_ASSERTED_DATE,
    CONDITION_CLINICAL,
    EXT_NEED_ASSESSMENT,
    IDENTIFIER_SYSTEM,
    NEED_DOMAIN_SYSTEM,
    SDOHCC_TEMPORARY_CODES,
    SNOMED,
    US_CORE_CONDITION_CATEGORY,
    profiles_for,
)
from mappings.case_model import NeedRecord
from mappings.concept_maps import NEED_DOMAIN, NEED_STATUS, SEVERITY, us_core_category
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

HEALTH_CONCERN: JsonDict = {
    "coding": [
        {
            "system": US_CORE_CONDITION_CATEGORY,
            "code": "health-concern",
            "display": "Health Concern",
        }
    ]
}


def need_categories(need: NeedRecord) -> list[JsonDict]:
    """health-concern, the us-core-category (sdoh, ...) and SDOHCC domain if any, our domain."""
    entry = NEED_DOMAIN[need.domain]
    categories = [HEALTH_CONCERN]
    if entry.us_core_category:
        categories.append(us_core_category(entry.us_core_category))
    if entry.sdohcc_code:
        categories.append(
            {"coding": [coding(SDOHCC_TEMPORARY_CODES, entry.sdohcc_code, entry.sdohcc_display)]}
        )
    categories.append({"coding": [coding(NEED_DOMAIN_SYSTEM, need.domain.value, entry.display)]})
    return categories


def need_code(need: NeedRecord) -> JsonDict:
    """The need's own code if it has one, else the domain's SNOMED finding, else text only."""
    if need.code is not None:
        codings = [coding(need.code.system, need.code.code, need.code.display)]
    else:
        entry = NEED_DOMAIN[need.domain]
        codings = (
            [coding(SNOMED, entry.snomed_code, entry.snomed_display)] if entry.snomed_code else []
        )
    return codeable_concept(codings, need.description)


def need_extensions(need: NeedRecord, context: CaseContext) -> list[JsonDict]:
    """The assessment that found the need; its date is the need's assertedDate."""
    if need.assessment_id is None:
        return []
    extensions: list[JsonDict] = []
    asserted = context.assessed_at.get(need.assessment_id)
    if asserted is not None:
        extensions.append(
            {"url": CONDITION_ASSERTED_DATE, "valueDateTime": fhir_datetime(asserted)}
        )
    extensions.append({"url": EXT_NEED_ASSESSMENT, "valueId": need.assessment_id})
    return extensions


def build_condition(need: NeedRecord, context: CaseContext) -> JsonDict:
    status = NEED_STATUS.to_fhir[need.status]
    severity = SEVERITY[need.severity] if need.severity else None
    return compact(
        resourceType="Condition",
        id=need.id,
        meta={"profile": profiles_for("Condition")},
        text=generated_narrative(
            need.description,
            [
                ("Domain", NEED_DOMAIN[need.domain].display),
                ("Severity", severity.display if severity else None),
                ("Status", status),
            ],
        ),
        extension=need_extensions(need, context),
        identifier=[{"system": IDENTIFIER_SYSTEM["Condition"], "value": need.id}],
        clinicalStatus={
            "coding": [coding(CONDITION_CLINICAL, status, NEED_STATUS.display.get(status))]
        },
        category=need_categories(need),
        severity=codeable_concept([coding(severity.system, severity.code, severity.code_display)])
        if severity
        else None,
        code=need_code(need),
        subject=context.subject,
        recordedDate=fhir_datetime(need.recorded_at) if need.recorded_at else None,
    )


def condition_resource(need: NeedRecord, context: CaseContext) -> JsonDict:
    return restore_elements(
        build_condition(need, context), need.fhir_extras, element_order("Condition")
    )
