"""Patient rules: an external identifier (system|value) names one patient only."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from service.api.concurrency import check_version
from service.auth.deps import Actor
from service.db.base import touch
from service.db.unit_of_work import UnitOfWork
from service.errors import NotFound, RuleViolation
from service.patients import repository
from service.patients.models import Patient, PatientIdentifier
from service.patients.schemas import IdentifierIn, PatientCreate, PatientUpdate


async def load_patient(session: AsyncSession, patient_id: str) -> Patient:
    patient = await repository.get_patient(session, patient_id)
    if patient is None:
        raise NotFound(f"no patient {patient_id}")
    return patient


async def _check_identifiers_free(
    session: AsyncSession, identifiers: list[IdentifierIn], patient_id: str | None
) -> None:
    seen: set[tuple[str, str]] = set()
    for identifier in identifiers:
        key = (identifier.system, identifier.value)
        if key in seen:
            raise RuleViolation("patient.identifier.unique", f"{key[0]}|{key[1]} is listed twice")
        seen.add(key)
        owner = await repository.identifier_owner(session, *key)
        if owner is not None and owner != patient_id:
            raise RuleViolation(
                "patient.identifier.unique", f"{key[0]}|{key[1]} already names patient {owner}"
            )


async def create_patient(session: UnitOfWork, actor: Actor, data: PatientCreate) -> Patient:
    await _check_identifiers_free(session, data.identifiers, None)
    patient = Patient(
        given_name=data.given_name,
        family_name=data.family_name,
        birth_date=data.birth_date,
        gender=data.gender,
        fhir_extras={},
        identifiers=[PatientIdentifier(system=i.system, value=i.value) for i in data.identifiers],
    )
    session.add(patient)
    await session.flush()
    session.changes.note_patient(patient.id, actor.id)
    return patient


async def update_patient(
    session: UnitOfWork,
    actor: Actor,
    patient: Patient,
    data: PatientUpdate,
    expected_version: int | None,
) -> Patient:
    check_version(patient.version, expected_version)
    fields = data.model_dump(exclude_unset=True, exclude={"identifiers"})
    for name, value in fields.items():
        setattr(patient, name, value)
    if data.identifiers is not None:
        await _check_identifiers_free(session, data.identifiers, patient.id)
        # Delete before insert: the unit of work would insert first and trip the unique
        # (system, value) constraint when an identifier is kept.
        patient.identifiers = []
        await session.flush()
        patient.identifiers = [
            PatientIdentifier(system=i.system, value=i.value) for i in data.identifiers
        ]
        touch(patient)
    await session.flush()
    session.changes.note_patient(patient.id, actor.id)
    return patient
