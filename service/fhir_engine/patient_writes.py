"""`POST /fhir/Patient` and `PUT /fhir/Patient/{id}`: a Patient on its own is a local patient
(`service.patients`), created or updated through the same rules as `/api/patients` (an
external identifier names one patient only).

What the patient record holds (first given and family name, birth date, gender, identifiers)
is mapped; the rest of the resource is kept in `fhir_extras` for the round trip
(`mappings.from_fhir.import_patient`). A value the record cannot hold (a name longer than the
column, too many identifiers) is refused with a 422 naming the FHIR element.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mappings.case_model import PatientRecord
from mappings.from_fhir import ResourceRejected, import_patient
from service.auth.deps import Actor
from service.db.record_fields import assign_fields
from service.db.unit_of_work import UnitOfWork
from service.fhir_engine.transactions import FhirRejected
from service.patients.records import PATIENT_RECEIVED, patient_fields
from service.patients.schemas import PatientCreate, PatientUpdate
from service.patients.service import create_patient, load_patient, update_patient

# Patient record field -> the FHIR element it is read from (mappings/from_fhir/patient.py).
ELEMENT_OF = {
    "given_name": "Patient.name[0].given[0]",
    "family_name": "Patient.name[0].family",
    "birth_date": "Patient.birthDate",
    "gender": "Patient.gender",
    "identifiers": "Patient.identifier",
}


def _record(resource: dict[str, Any]) -> PatientRecord:
    try:
        return import_patient(resource)
    except ResourceRejected as exc:
        raise FhirRejected(str(exc), extra={"issues": exc.outcome["issue"]}) from exc


def _held(schema: type[PatientCreate] | type[PatientUpdate], fields: dict[str, Any]) -> Any:
    """The fields as the patient schema, or a 422 naming the element it cannot hold."""
    try:
        return schema.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        element = ELEMENT_OF.get(str(error["loc"][0]), "Patient")
        raise FhirRejected(
            f"{element} cannot be kept here: {error['msg']}", extra={"expression": [element]}
        ) from exc


async def create_patient_resource(
    session: UnitOfWork, actor: Actor, resource: dict[str, Any]
) -> str:
    """A new local patient from a received Patient (its `id` already the server's); its id."""
    record = _record(resource)
    patient = await create_patient(session, actor, _held(PatientCreate, patient_fields(record)))
    assign_fields(patient, record, PATIENT_RECEIVED)
    return patient.id


async def update_patient_resource(
    session: UnitOfWork, actor: Actor, patient_id: str, resource: dict[str, Any]
) -> None:
    """A received version of a Patient replaces the patient's demographics and identifiers."""
    record = _record(resource)
    patient = await load_patient(session, patient_id)
    data = _held(PatientUpdate, patient_fields(record))
    await update_patient(session, actor, patient, data, None)
    assign_fields(patient, record, PATIENT_RECEIVED)
