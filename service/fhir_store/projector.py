"""Re-projects every case (and patient) a transaction changed, just before it commits.

The resources whose content changed get new versions; a Provenance names those versions and
who made the change. Resources a case no longer produces (a removed record) are marked
deleted. Runs as a `Database.before_commit` hook, so the case and its FHIR form never
disagree: if projecting fails, the change fails.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from mappings.projection import ProjectedResource, project_case, validated
from mappings.to_fhir.patient import patient_resource
from mappings.to_fhir.provenance import CaseChange, provenance_resource
from service.cases.models import Case
from service.db.base import new_id, utcnow
from service.db.changes import note_case_reprojected, take_changes
from service.fhir_store.case_record import load_case_record, patient_record
from service.fhir_store.models import StoredResource
from service.fhir_store.writer import ResourceToStore, delete_resources, store_resources
from service.patients.models import Patient


def _to_store(
    resources: Iterable[ProjectedResource], patient_id: str | None = None
) -> list[ResourceToStore]:
    return [
        ResourceToStore(r.resource_type, r.id, r.resource, r.json, patient_id) for r in resources
    ]


async def _record_provenance(
    session: AsyncSession,
    stored: list[StoredResource],
    author: str | None,
    case_id: str | None,
    patient_id: str,
) -> None:
    if not stored:
        return
    change = CaseChange(
        id=new_id(),
        recorded_at=utcnow(),
        targets=[f"{r.resource_type}/{r.id}/_history/{r.version_id}" for r in stored],
        activity="CREATE" if all(r.version_id == 1 for r in stored) else "UPDATE",
        author=author,
    )
    provenance = validated(provenance_resource(change))
    await store_resources(session, _to_store([provenance], patient_id), case_id=case_id)


async def project_changes(session: AsyncSession) -> None:
    changes = take_changes(session)
    if not changes:
        return
    author = ", ".join(sorted(changes.actors)) or None
    case_ids = set(changes.cases)
    if changes.patients:
        case_ids |= set(
            await session.scalars(select(Case.id).where(Case.patient_id.in_(changes.patients)))
        )
        patients = await session.scalars(
            select(Patient)
            .where(Patient.id.in_(changes.patients))
            .options(selectinload(Patient.identifiers))
        )
        for patient in patients:
            resource = validated(patient_resource(patient_record(patient)))
            stored = await store_resources(session, _to_store([resource]), case_id=None)
            await _record_provenance(session, stored, author, None, patient.id)
    for case_id in sorted(case_ids):
        record = await load_case_record(session, case_id)
        projection = project_case(record)
        stored = await store_resources(session, _to_store(projection), case_id=case_id)
        produced = {(r.resource_type, r.id) for r in projection}
        vanished = [
            row
            for row in await session.scalars(
                select(StoredResource).where(
                    StoredResource.case_id == case_id,
                    StoredResource.resource_type != "Provenance",
                    StoredResource.deleted.is_(False),
                )
            )
            if (row.resource_type, row.id) not in produced
        ]
        await delete_resources(session, vanished)
        await _record_provenance(session, stored + vanished, author, case_id, record.patient.id)
        if stored or vanished:
            note_case_reprojected(session, case_id, author)
