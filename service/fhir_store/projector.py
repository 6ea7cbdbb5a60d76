"""Projects what a unit of work changed into the FHIR store (called by `UnitOfWork.commit`).

The resources whose content changed get new versions; a Provenance names those versions and
who made the change. Resources a case no longer produces (a removed record) are marked
deleted. Only the resources a change can alter are built and validated (validation is the
cost floor of a projection, see bench/mapping_throughput.py): a record's own resource and the
CarePlan that lists it; a change to the case itself, to its patient, or to a record whose reach
is not listed in `_reach` re-projects the whole case. Either way the stored bytes equal a full
projection's (tests/fhir_store/test_partial_projection.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from mappings.case_model import CaseRecord
from mappings.projection import ProjectedResource, case_resources, validated
from mappings.to_fhir.context import care_team_id
from mappings.to_fhir.patient import patient_resource
from mappings.to_fhir.people import PEOPLE_TYPES, people_resources
from mappings.to_fhir.provenance import CaseChange, provenance_resource
from service.cases.models import Case
from service.db.base import new_id, utcnow
from service.db.changes import WHOLE_CASE, ChangeSet, RecordKey
from service.fhir_store.case_record import case_record_of, load_case_record
from service.fhir_store.models import StoredResource
from service.fhir_store.writer import (
    PendingIndex,
    ResourceToStore,
    delete_resources,
    store_people,
    store_resources,
)
from service.patients.models import Patient
from service.patients.records import patient_record

ResourceKey = tuple[str, str]


def _people(case: CaseRecord) -> set[ResourceKey]:
    """Who acts in the case (Practitioners, the Organization): only the case itself, a
    ServiceRequest's requester or a check-in's performer name them."""
    return {(r["resourceType"], r["id"]) for r in people_resources(case)}


def _reach(case: CaseRecord, records: set[RecordKey]) -> set[ResourceKey] | None:
    """The resources of `case` that a change to `records` can alter; None for all of them.

    Mirrors what each mapping in `mappings/to_fhir` reads: a Goal, ServiceRequest or Condition
    reads its own record and the case context (patient, manager, assessment dates, which only
    case, patient and assessment changes alter); the CareTeam reads the members (and the case,
    of which a team's dismissal changes only the content kept for the CareTeam); the CarePlan
    reads every record of the case, so it is always in reach; the people are read from the
    manager, the requesters and the check-in performers."""
    if WHOLE_CASE in records:
        return None
    reach: set[ResourceKey] = {("CarePlan", case.id)}
    for entity, record_id in records:
        if entity == "goal":
            reach.add(("Goal", record_id))
        elif entity == "intervention":  # its requester may be someone new to the case
            reach.add(("ServiceRequest", record_id))
            reach |= _people(case)
        elif entity == "need":
            reach.add(("Condition", record_id))
        elif entity == "assessment":  # its date is its needs' Condition.assertedDate
            reach |= {("Condition", n.id) for n in case.needs}
        elif entity == "check_in":  # a check-in records progress on goals (Goal.note)
            reach |= {("Goal", g.id) for g in case.goals} | _people(case)
        elif entity in ("care_team_member", "care_team"):
            # A whole team dismissed (`dismiss_team`) also drops the case's kept CareTeam
            # content (`fhir_extras["CareTeam"]`), which only the CareTeam reads.
            reach.add(("CareTeam", care_team_id(case.id)))
        elif entity not in ("note", "transition"):  # those two live in the CarePlan only
            return None
    return reach


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
    index: PendingIndex,
) -> None:
    if not stored:
        return
    change = CaseChange(
        id=new_id(),
        recorded_at=utcnow(),
        targets=[f"{r.resource_type}/{r.id}/_history/{r.version_id}" for r in stored],
        activity="CREATE"
        if all(r.version_id == 1 for r in stored)
        else "DELETE"
        if all(r.deleted for r in stored)  # a withdrawn case's resources, all gone at once
        else "UPDATE",
        author=author,
    )
    provenance = validated(provenance_resource(change))
    await store_resources(
        session, _to_store([provenance], patient_id), case_id=case_id, new=True, index=index
    )


async def project_changes(
    session: AsyncSession, changes: ChangeSet, written: list[StoredResource] | None = None
) -> dict[str, str | None]:
    """Project, version, index and attribute (Provenance) what `changes` names; returns
    case id -> author of every case whose resources got new versions (a no-op save: none).
    `written` collects the rows stored (the caller keeps them, so the session's weak identity
    map still holds them when the caller reads them)."""
    versioned: dict[str, str | None] = {}
    if not (changes.cases or changes.patients):
        return versioned
    index = PendingIndex()
    kept: list[StoredResource] = [] if written is None else written
    author = ", ".join(sorted(changes.actors)) or None
    scope = {case_id: set(records) for case_id, records in changes.cases.items()}
    if changes.patients:
        for case_id in await session.scalars(
            select(Case.id).where(Case.patient_id.in_(changes.patients))
        ):
            scope[case_id] = {WHOLE_CASE}  # the patient is in every resource's subject
        patients = await session.scalars(
            select(Patient)
            .where(Patient.id.in_(changes.patients))
            .options(selectinload(Patient.identifiers))
        )
        for patient in patients:
            resource = validated(patient_resource(patient_record(patient)))
            stored = await store_resources(
                session, _to_store([resource]), case_id=None, index=index
            )
            await _record_provenance(session, stored, author, None, patient.id, index)
            kept += stored
    for case_id in sorted(scope):
        created = changes.created.get(case_id)
        if created is not None and created.case.patient_id == created.patient.id:
            await session.flush()  # a change since: onupdate values (updated_at) set, as read
            record = await case_record_of(session, created)
        else:
            created = None
            record = await load_case_record(session, case_id)
        reach = _reach(record, scope[case_id])
        resources = case_resources(record)
        if reach is not None:
            resources = [r for r in resources if (r["resourceType"], r["id"]) in reach]
        projection = [validated(r) for r in resources]
        people = [r for r in projection if r.resource_type in PEOPLE_TYPES]
        own = [r for r in projection if r.resource_type not in PEOPLE_TYPES]
        stored = await store_people(session, _to_store(people), index)
        stored += await store_resources(session, _to_store(own), case_id=case_id, index=index)
        kept += stored
        produced = {(r.resource_type, r.id) for r in projection}
        vanished = (
            []  # a case made in this unit of work had nothing stored before
            if created is not None
            else [
                row
                for row in await session.scalars(
                    select(StoredResource).where(
                        StoredResource.case_id == case_id,
                        StoredResource.resource_type != "Provenance",
                        StoredResource.deleted.is_(False),
                    )
                )
                if (row.resource_type, row.id) not in produced
                and (reach is None or (row.resource_type, row.id) in reach)
            ]
        )
        await delete_resources(session, vanished)
        await _record_provenance(
            session, stored + vanished, author, case_id, record.patient.id, index
        )
        if stored or vanished:
            versioned[case_id] = author
    await index.write(session)
    return versioned
