"""Patient -> PatientRecord (the minimal demographics the case keeps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.canonical import IDENTIFIER_SYSTEM
from mappings.case_model import IdentifierRecord, PatientRecord
from mappings.concept_maps import ADMINISTRATIVE_GENDER
from mappings.fhir_datatypes import parse_date


def patient_record(resource: Mapping[str, Any]) -> PatientRecord:
    own = IDENTIFIER_SYSTEM["Patient"]
    identifiers = tuple(
        IdentifierRecord(system=i["system"], value=i["value"])
        for i in resource.get("identifier") or ()
        if i.get("system") and i.get("value") and i["system"] != own
    )
    names = resource.get("name") or [{}]
    given = names[0].get("given") or []
    gender = resource.get("gender")
    return PatientRecord(
        id=resource["id"],
        identifiers=identifiers,
        given_name=given[0] if given else None,
        family_name=names[0].get("family"),
        birth_date=parse_date(resource.get("birthDate")),
        # "unknown" is also what the mapping writes when the case has no gender.
        gender=ADMINISTRATIVE_GENDER.to_case.get(gender)
        if gender and gender != "unknown"
        else None,
    )
