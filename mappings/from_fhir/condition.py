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
    NEED_STATUS,
    SDOH_DOMAIN_BY_CODE,
    SEVERITY_BY_CODE,
)
from mappings.fhir_datatypes import codes_of, extension_values, first_coding, parse_datetime
from mappings.from_fhir.common import coding_record, concept_text
from mappings.vocabulary import NeedDomain, NeedStatus

US_CORE_CATEGORY_DOMAIN = {"functional-status": NeedDomain.functional}


def need_domain(categories: object, code: object = None) -> NeedDomain:
    """Our own domain code, else the SDOHCC category's domain, else functional-status, else the
    SDOH domain of the concern's own code (an EHR tags an SDOH concern with US Core's `sdoh`
    category and a SNOMED CT or ICD-10-CM finding, as US Core's condition-SDOH-example does);
    else medical. The code tables are `sdoh_domain.csv`."""
    for found in codes_of(categories, NEED_DOMAIN_SYSTEM):
        if found in NeedDomain.__members__:
            return NeedDomain(found)
    for found in codes_of(categories, SDOHCC_TEMPORARY_CODES):
        if (SDOHCC_TEMPORARY_CODES, found) in SDOH_DOMAIN_BY_CODE:
            return SDOH_DOMAIN_BY_CODE[(SDOHCC_TEMPORARY_CODES, found)]
    for found in codes_of(categories, US_CORE_CATEGORY):
        if found in US_CORE_CATEGORY_DOMAIN:
            return US_CORE_CATEGORY_DOMAIN[found]
    codings = code.get("coding") if isinstance(code, Mapping) else None
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, Mapping):
            key = (str(coding.get("system")), str(coding.get("code")))
            if key in SDOH_DOMAIN_BY_CODE:
                return SDOH_DOMAIN_BY_CODE[key]
    return NeedDomain.medical


def need_record(resource: Mapping[str, Any]) -> NeedRecord:
    """The case's view of a (validated) Condition, without extras."""
    domain = need_domain(resource.get("category"), resource.get("code"))
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
