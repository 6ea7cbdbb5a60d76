"""Which local patient an EHR patient is: matched by identifier (system|value) or by an existing
link, never by name or birth date. When the identifiers and the link point to more than one
local patient, nothing is merged or linked: the conflict is recorded for a person to resolve."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from mappings.from_fhir.patient import patient_record
from service.db.base import new_id, utcnow
from service.db.unit_of_work import UnitOfWork
from service.ehr.client import JsonObject
from service.errors import Conflict, RuleViolation
from service.links.models import PatientLink
from service.links.repository import link_patient
from service.patients.models import Patient, PatientIdentifier
from service.patients.repository import identifier_owner
from service.pull import repository
from service.pull.models import IdentityConflict


@dataclass(frozen=True)
class Matched:
    patient_id: str
    created: bool


@dataclass(frozen=True)
class Ambiguous:
    conflict_id: str
    candidate_patient_ids: list[str]
    reason: str


def remote_identifiers(patient: JsonObject) -> list[tuple[str, str]]:
    return [
        (str(i["system"]), str(i["value"]))
        for i in patient.get("identifier") or []
        if isinstance(i, dict) and i.get("system") and i.get("value")
    ]


async def match_patient(
    session: UnitOfWork, connection_id: str, remote: JsonObject, actor: str
) -> Matched | Ambiguous:
    remote_id = str(remote["id"])
    pointers: dict[str, list[str]] = {}
    link = await session.scalar(
        select(PatientLink).where(
            PatientLink.connection_id == connection_id, PatientLink.remote_id == remote_id
        )
    )
    if link is not None:
        pointers.setdefault(link.patient_id, []).append(f"the link of Patient/{remote_id}")
    for system, value in remote_identifiers(remote):
        owner = await identifier_owner(session, system, value)
        if owner is not None:
            pointers.setdefault(owner, []).append(f"identifier {system}|{value}")
    if len(pointers) > 1 and link is not None:
        chosen = await repository.resolved_choice(session, connection_id, remote_id)
        if chosen == link.patient_id:
            # A person resolved this conflict by choosing the linked patient.
            return Matched(link.patient_id, created=False)
    if len(pointers) > 1:
        reason = "; ".join(
            f"{', '.join(what)} -> patient {patient_id}"
            for patient_id, what in sorted(pointers.items())
        )
        conflict = await repository.add_conflict(
            session, connection_id, remote_id, list(pointers), reason
        )
        return Ambiguous(conflict.id, sorted(pointers), reason)
    if pointers:
        [patient_id] = pointers
        await link_patient(session, connection_id, patient_id, remote_id)
        return Matched(patient_id, created=False)
    patient = _new_local_patient(remote)
    session.add(patient)
    await session.flush()
    session.changes.note_patient(patient.id, actor)
    await link_patient(session, connection_id, patient.id, remote_id)
    return Matched(patient.id, created=True)


def _new_local_patient(remote: JsonObject) -> Patient:
    record = patient_record(remote)
    # The local id is ours: the EHR's id lives in the PatientLink.
    return Patient(
        id=new_id(),
        given_name=record.given_name,
        family_name=record.family_name,
        birth_date=record.birth_date,
        gender=record.gender,
        identifiers=[PatientIdentifier(system=i.system, value=i.value) for i in record.identifiers],
    )


async def resolve_conflict(
    session: UnitOfWork, conflict: IdentityConflict, patient_id: str, actor: str
) -> None:
    """A person's choice: link the remote patient to one of the candidates."""
    if conflict.resolved_at is not None:
        raise Conflict(f"identity conflict {conflict.id} is already resolved")
    if patient_id not in conflict.candidate_patient_ids:
        raise RuleViolation(
            "pull.identity.candidate",
            f"patient {patient_id} is not one of the candidates of this conflict",
        )
    existing = await session.scalar(
        select(PatientLink).where(
            PatientLink.connection_id == conflict.connection_id,
            PatientLink.remote_id == conflict.remote_patient_id,
        )
    )
    if existing is not None:
        existing.patient_id = patient_id
    else:
        session.add(
            PatientLink(
                connection_id=conflict.connection_id,
                patient_id=patient_id,
                remote_id=conflict.remote_patient_id,
            )
        )
    session.changes.note_patient_linked(patient_id)
    conflict.resolved_at = utcnow()
    conflict.resolved_patient_id = patient_id
    conflict.resolved_by = actor
    await session.flush()
