"""Pull one patient's record from one connection into CaseBridge: read it (reader), decide who
the patient is (identity), and store every resource, the link and the new cursors in one
transaction. Safe to repeat: records are upserted and cursors only move on after a type was
read in full. Then what the EHR changed in resources that open cases hold reaches those cases
(`into_cases`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.db.session import Database
from service.ehr.client import FhirClient, JsonObject
from service.ehr.discovery import Capabilities
from service.ehr.errors import EhrError
from service.pull import repository
from service.pull.identity import Ambiguous, match_patient
from service.pull.into_cases import CaseUpdates, bring_pulled_changes_to_cases
from service.pull.reader import (
    CARE_PLAN_REFERENCES,
    RECORD_TYPES,
    Failure,
    PullTarget,
    TypeRead,
    in_categories,
    keep_the_patients_own,
    read_by_reference,
    read_everything,
    read_record_types,
    read_remote_patient,
    referenced_ids,
)
from service.pull.searches import PatientSearches


@dataclass
class PatientPullResult:
    target: PullTarget
    remote_patient_id: str | None = None
    patient_id: str | None = None
    patient_created: bool = False
    conflict_id: str | None = None
    # Resources stored, per type (the Patient included).
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    # What the pull brought to the open cases that hold its resources.
    case_updates: CaseUpdates = field(default_factory=CaseUpdates)

    @property
    def complete(self) -> bool:
        return self.patient_id is not None and not self.failures


async def pull_patient_record(
    database: Database,
    client: FhirClient,
    connection_id: str,
    target: PullTarget,
    *,
    actor: str,
    capabilities: Capabilities | None,
    observation_categories: Sequence[str] = (),
    types: Sequence[str] = RECORD_TYPES,
    may_use_everything: bool = True,
    searches: PatientSearches | None = None,
) -> PatientPullResult:
    """`may_use_everything=False` when the granted scopes do not cover every type: servers
    leave out of `$everything` what a token may not read, silently, where a type's search is
    refused with a reason that the pull reports. `searches` knows the patient search of the
    types the CapabilityStatement is silent on (probing the EHR once); without it, the
    CapabilityStatement alone decides."""
    result = PatientPullResult(target)
    try:
        remote = await read_remote_patient(client, target)
    except EhrError as exc:
        result.failures.append(Failure("Patient", exc.detail, target.remote_id))
        return result
    remote_id = str(remote["id"])
    result.remote_patient_id = remote_id
    async with database.transaction(write=False) as session:
        cursors = await repository.cursors_of(session, connection_id, remote_id)
        stored_plans = await repository.stored_resources(
            session, connection_id, remote_id, "CarePlan"
        )
    patient_params = (
        await searches.patient_params(client, types, remote_id) if searches is not None else None
    )
    reads = None
    first_pull = may_use_everything and not cursors
    if first_pull and capabilities and capabilities.supports_operation("Patient", "everything"):
        # The whole record in one paged operation.
        reads = await read_everything(
            client, remote_id, capabilities, observation_categories, types, patient_params
        )
    if reads is None:
        reads = await read_record_types(
            client, remote_id, capabilities, cursors, observation_categories, types, patient_params
        )
    reads = await _read_unsearchable_by_reference(client, reads, stored_plans)
    keep_the_patients_own(reads, remote_id)
    for read in reads:
        if read.resource_type == "Observation":
            # Outside the pull scope, as the Bulk pull leaves them: a server may ignore
            # `category`.
            read.resources = {
                remote: resource
                for remote, resource in read.resources.items()
                if in_categories(resource, observation_categories)
            }
    async with database.unit_of_work() as session:
        match = await match_patient(session, connection_id, remote, actor)
        if isinstance(match, Ambiguous):
            result.conflict_id = match.conflict_id
            result.failures.append(
                Failure("Patient", f"ambiguous identity, left for a person: {match.reason}")
            )
            return result
        result.patient_id = match.patient_id
        result.patient_created = match.created
        result.counts["Patient"] = await repository.upsert_records(
            session, connection_id, match.patient_id, remote_id, [remote]
        )
        advanced: dict[str, dt.datetime] = {}
        for read in reads:
            stored = await repository.upsert_records(
                session, connection_id, match.patient_id, remote_id, list(read.resources.values())
            )
            result.counts[read.resource_type] = stored
            result.failures.extend(read.invalid)
            if read.failure is not None:
                result.failures.append(Failure(read.resource_type, read.failure))
            elif read.server_time is not None and not read.invalid:
                # Only a type read in full moves on; an invalid resource is read again next
                # time, in case the EHR has corrected it.
                advanced[read.resource_type] = read.server_time
        await repository.advance_cursors(session, connection_id, remote_id, advanced)
    # Stored first: the EHR's record is kept whatever the cases make of it.
    result.case_updates = await bring_pulled_changes_to_cases(
        database, connection_id, (r for read in reads for r in read.resources.values())
    )
    failed = result.case_updates.failed
    for (resource_type, resource_id), reason in failed.items():
        result.failures.append(Failure(resource_type, reason, resource_id))
    if failed:
        # Read those types in full next time, so their changes get another chance.
        async with database.transaction() as session:
            await repository.forget_cursors(
                session, connection_id, remote_id, sorted({t for t, _ in failed})
            )
    return result


async def _read_unsearchable_by_reference(
    client: FhirClient, reads: list[TypeRead], stored_plans: Sequence[JsonObject]
) -> list[TypeRead]:
    """Goals and CareTeams the EHR will not search by patient are read by the references of the
    patient's CarePlans: those just pulled and those stored before (an incremental pull only
    returns the CarePlans that changed, but their Goals may have changed on their own)."""
    plans_read = next((r for r in reads if r.resource_type == "CarePlan"), None)
    if plans_read is None or not plans_read.complete:
        return reads
    plans = {**{str(p["id"]): p for p in stored_plans}, **plans_read.resources}
    replaced: list[TypeRead] = []
    for read in reads:
        if read.not_searchable and read.resource_type in CARE_PLAN_REFERENCES:
            ids = referenced_ids(list(plans.values()), read.resource_type)
            read = await read_by_reference(client, read.resource_type, ids)
        replaced.append(read)
    return replaced
