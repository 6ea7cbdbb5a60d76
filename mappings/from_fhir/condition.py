"""US Core Condition (problem or health concern, anyone's) -> NeedRecord."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.canonical import (
    CONDITION_CLINICAL,
    EXT_NEED_ASSESSMENT,
    NEED_DOMAIN_SYSTEM,
    SDOHCC_TEMPORARY_CODES,
    SNOMED,
    US_CORE_CATEGORY,
)
from mappings.case_model import NeedRecord
from mappings.concept_maps import (
    NEED_DOMAIN,
    NEED_DOMAIN_BY_SDOHCC_CODE,
    NEED_STATUS,
    SEVERITY_BY_CODE,
)
from mappings.fhir_datatypes import codes_of, extension_values, first_coding, parse_datetime
from mappings.from_fhir.common import coding_record, concept_text
from mappings.vocabulary import NeedDomain, NeedStatus

US_CORE_CATEGORY_DOMAIN = {"functional-status": NeedDomain.functional}


def need_domain(categories: object) -> NeedDomain:
    """Our own domain code, else the SDOHCC domain, else functional-status; else medical."""
    for code in codes_of(categories, NEED_DOMAIN_SYSTEM):
        if code in NeedDomain.__members__:
            return NeedDomain(code)
    for code in codes_of(categories, SDOHCC_TEMPORARY_CODES):
        if code in NEED_DOMAIN_BY_SDOHCC_CODE:
            return NEED_DOMAIN_BY_SDOHCC_CODE[code]
    for code in codes_of(categories, US_CORE_CATEGORY):
        if code in US_CORE_CATEGORY_DOMAIN:
            return US_CORE_CATEGORY_DOMAIN[code]
    return NeedDomain.medical


def need_record(resource: Mapping[str, Any]) -> NeedRecord:
    """The case's view of a (validated) Condition, without extras."""
    domain = need_domain(resource.get("category"))
    code = resource.get("code")
    own = coding_record(code)
    default = NEED_DOMAIN[domain]
    if own is not None and own.system == SNOMED and own.code == default.snomed_code:
        own = None
    clinical = first_coding(resource.get("clinicalStatus"), CONDITION_CLINICAL)
    status = NEED_STATUS.to_case.get(str(clinical.get("code"))) if clinical else None
    severity = first_coding(resource.get("severity"))
    assessment = [e.get("valueId") for e in extension_values(resource, EXT_NEED_ASSESSMENT)]
    return NeedRecord(
        id=resource["id"],
        domain=domain,
        description=concept_text(code) or "Health concern",
        severity=SEVERITY_BY_CODE.get((str(severity.get("system")), str(severity.get("code"))))
        if severity
        else None,
        status=status or NeedStatus.active,
        code=own,
        assessment_id=assessment[0] if assessment else None,
        recorded_at=parse_datetime(resource.get("recordedDate")),
    )
