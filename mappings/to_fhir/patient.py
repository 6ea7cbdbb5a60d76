"""PatientRecord -> minimal US Core Patient."""

from __future__ import annotations

from mappings.canonical import DATA_ABSENT_REASON, IDENTIFIER_SYSTEM, profiles_for
from mappings.case_model import PatientRecord
from mappings.concept_maps import ADMINISTRATIVE_GENDER
from mappings.fhir_datatypes import JsonDict, compact, fhir_date
from mappings.narrative import generated_narrative
from mappings.preserved_elements import restore_elements
from mappings.to_fhir.context import patient_display
from mappings.to_fhir.element_order import element_order

UNKNOWN_NAME: JsonDict = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}


def build_patient(patient: PatientRecord) -> JsonDict:
    """The Patient as the record alone gives it (no preserved elements)."""
    own = {"system": IDENTIFIER_SYSTEM["Patient"], "value": patient.id}
    identifiers = [{"system": i.system, "value": i.value} for i in patient.identifiers]
    if own not in identifiers:
        identifiers.append(own)
    name = compact(
        family=patient.family_name, given=[patient.given_name] if patient.given_name else None
    )
    # US Core requires a name and a gender; when the case has neither, say so the FHIR way.
    gender = ADMINISTRATIVE_GENDER.to_fhir[patient.gender] if patient.gender else "unknown"
    return compact(
        resourceType="Patient",
        id=patient.id,
        meta={"profile": profiles_for("Patient")},
        text=generated_narrative(
            patient_display(patient) or "Patient",
            [
                ("Gender", gender),
                ("Born", fhir_date(patient.birth_date) if patient.birth_date else None),
            ],
        ),
        identifier=identifiers,
        name=[name or UNKNOWN_NAME],
        gender=gender,
        birthDate=fhir_date(patient.birth_date) if patient.birth_date else None,
    )


def patient_resource(patient: PatientRecord) -> JsonDict:
    return restore_elements(build_patient(patient), patient.fhir_extras, element_order("Patient"))
