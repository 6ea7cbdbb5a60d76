from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from service.api.pagination import fetch_page
from service.patients.models import Patient, PatientIdentifier

# One statement (a join), not two: every /fhir create about a known patient reads it. Built
# once: composing it per call cost more CPU than running it.
_PATIENT = (
    select(Patient)
    .where(Patient.id == bindparam("patient_id"))
    .options(joinedload(Patient.identifiers))
)


async def get_patient(session: AsyncSession, patient_id: str) -> Patient | None:
    found = await session.scalars(_PATIENT, {"patient_id": patient_id})
    return found.unique().one_or_none()


async def lock_patient(session: AsyncSession, patient_id: str) -> None:
    """Wait for, then hold until the transaction ends, the patient's row lock (`FOR UPDATE`),
    which every update of the patient's row meets (none to hold if there is no such patient).
    On SQLite the write transaction already excludes other writers (`service.db.session`)."""
    await session.execute(select(Patient.id).where(Patient.id == patient_id).with_for_update())


async def find_by_identifier(session: AsyncSession, system: str, value: str) -> Patient | None:
    return await session.scalar(
        select(Patient)
        .join(PatientIdentifier)
        .where(PatientIdentifier.system == system, PatientIdentifier.value == value)
        .options(selectinload(Patient.identifiers))
    )


async def identifier_owner(session: AsyncSession, system: str, value: str) -> str | None:
    return await session.scalar(
        select(PatientIdentifier.patient_id).where(
            PatientIdentifier.system == system, PatientIdentifier.value == value
        )
    )


async def list_patients(
    session: AsyncSession,
    *,
    identifier: tuple[str, str] | None,
    family_name: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Patient], str | None]:
    statement = select(Patient).options(selectinload(Patient.identifiers))
    if identifier is not None:
        statement = statement.join(PatientIdentifier).where(
            PatientIdentifier.system == identifier[0], PatientIdentifier.value == identifier[1]
        )
    if family_name is not None:
        statement = statement.where(Patient.family_name == family_name)
    return await fetch_page(session, statement, Patient.created_at, Patient.id, cursor, limit)
