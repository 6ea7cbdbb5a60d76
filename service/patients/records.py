"""A patient row <-> its `PatientRecord` (`mappings.case_model`), both ways, in one place.

Both directions read `SAME`, the fields the row and the record name alike; the identifiers
(child rows) are mapped by hand. A new patient column is added to `SAME` (or mapped here), and
`tests/fhir_store/test_record_mappers.py` fails until it is."""

from __future__ import annotations

from typing import Any

from mappings.case_model import IdentifierRecord, PatientRecord
from service.db.record_fields import same_fields
from service.patients.models import Patient, PatientIdentifier
from service.patients.schemas import PatientUpdate

SAME = ("id", "given_name", "family_name", "birth_date", "gender", "fhir_extras")
# What a received Patient sets that `/api/patients`' shapes do not carry.
PATIENT_RECEIVED = ("fhir_extras",)


def patient_record(row: Patient) -> PatientRecord:
    """Needs `Patient.identifiers` loaded."""
    identifiers = tuple(IdentifierRecord(system=i.system, value=i.value) for i in row.identifiers)
    return PatientRecord(**same_fields(row, SAME), identifiers=identifiers)


def new_patient(record: PatientRecord) -> Patient:
    return Patient(
        **same_fields(record, SAME),
        identifiers=[PatientIdentifier(system=i.system, value=i.value) for i in record.identifiers],
    )


def patient_fields(record: PatientRecord) -> dict[str, Any]:
    """A received patient as the fields of `/api/patients`' create and update shapes (the
    identifiers as plain dicts, so the shape validates them)."""
    fields = same_fields(record, (name for name in SAME if name in PatientUpdate.model_fields))
    return fields | {"identifiers": [i.model_dump() for i in record.identifiers]}
