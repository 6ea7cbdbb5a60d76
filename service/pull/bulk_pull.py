"""A population pull: one Bulk Data export of a Group, stored like a patient pull's records.

The Patient file is read first, so that each patient is matched (by identifier) and linked
before its resources arrive; the other files are stored as they stream, a batch per
transaction, each resource filed under the local patient its `subject`/`patient` names.
Memory holds one batch, whatever the file size. The Group's cursor moves to the export's
`transactionTime` only when every file was read without a bad line. As after a patient pull,
the EHR's changes of resources that open cases hold reach those cases (`into_cases`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from service.db.session import Database
from service.ehr.client import JsonObject
from service.ehr.errors import EhrError
from service.pull import repository
from service.pull.bulk import BadLine, BulkExport, OutputFile
from service.pull.identity import Ambiguous, match_patient
from service.pull.into_cases import bring_pulled_changes_to_cases
from service.pull.reader import Failure, in_categories

BATCH_SIZE = 500
PATIENT_REFERENCE_ELEMENTS = ("subject", "patient", "beneficiary")


@dataclass
class BulkPullResult:
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    transaction_time: dt.datetime | None = None


async def pull_group(
    database: Database,
    export: BulkExport,
    connection_id: str,
    group_id: str,
    *,
    types: Sequence[str],
    actor: str,
    progress: Callable[[str | None], Awaitable[None]],
    type_filters: Sequence[str] = (),
    observation_categories: Sequence[str] = (),
    batch_size: int = BATCH_SIZE,
) -> BulkPullResult:
    """`type_filters` narrow the export (`_typeFilter`); Observations outside
    `observation_categories` are left out here too, since a server may ignore the filter."""
    result = BulkPullResult()
    async with database.transaction(write=False) as session:
        since = await repository.bulk_cursor(session, connection_id, group_id)
    status_url = await export.kick_off(group_id, types, since, type_filters)
    manifest = await export.wait(status_url, progress)
    result.transaction_time = manifest.transaction_time
    for error_file in manifest.errors:
        result.failures.append(
            Failure(error_file.type, f"the export reported errors: {error_file.url}")
        )
    files = sorted(manifest.output, key=lambda f: f.type != "Patient")
    for file in files:
        bad_lines: list[BadLine] = []
        try:
            await _store_file(
                database,
                export,
                connection_id,
                file,
                manifest.requires_access_token,
                bad_lines,
                result,
                actor,
                batch_size,
                observation_categories,
            )
        except EhrError as exc:
            result.failures.append(Failure(file.type, f"{file.url}: {exc.detail}"))
        result.failures.extend(
            Failure(file.type, f"{file.url} line {bad.line_number}: {bad.reason}")
            for bad in bad_lines
        )
    if not result.failures and manifest.transaction_time is not None:
        async with database.transaction() as session:
            await repository.advance_bulk_cursor(
                session, connection_id, group_id, manifest.transaction_time
            )
    return result


async def _store_file(
    database: Database,
    export: BulkExport,
    connection_id: str,
    file: OutputFile,
    requires_token: bool,
    bad_lines: list[BadLine],
    result: BulkPullResult,
    actor: str,
    batch_size: int,
    observation_categories: Sequence[str],
) -> None:
    batch: list[JsonObject] = []
    async for resource in export.resources(file, requires_token, bad_lines):
        if file.type == "Observation" and not in_categories(resource, observation_categories):
            continue  # outside the connection's pull scope
        batch.append(resource)
        if len(batch) >= batch_size:
            await _store_batch(database, connection_id, file.type, batch, result, actor)
            batch = []
    if batch:
        await _store_batch(database, connection_id, file.type, batch, result, actor)


async def _store_batch(
    database: Database,
    connection_id: str,
    resource_type: str,
    batch: list[JsonObject],
    result: BulkPullResult,
    actor: str,
) -> None:
    rows: list[tuple[str | None, str | None, JsonObject]] = []
    async with database.unit_of_work() as session:
        if resource_type == "Patient":
            for patient in batch:
                match = await match_patient(session, connection_id, patient, actor)
                if isinstance(match, Ambiguous):
                    result.failures.append(
                        Failure("Patient", f"ambiguous identity: {match.reason}", patient["id"])
                    )
                    continue
                rows.append((match.patient_id, patient["id"], patient))
        else:
            remote_patients = {id(r): _patient_of(r) for r in batch}
            linked = await repository.linked_patients(
                session, connection_id, [p for p in remote_patients.values() if p]
            )
            for resource in batch:
                remote_patient = remote_patients[id(resource)]
                local = linked.get(remote_patient) if remote_patient else None
                rows.append((local, remote_patient, resource))
        stored = await repository.upsert_record_rows(session, connection_id, rows)
    result.counts[resource_type] = result.counts.get(resource_type, 0) + stored
    # Stored first; then what the EHR changed in resources open cases hold reaches them. A
    # failure keeps the Group's cursor, so the next export reads it again.
    updates = await bring_pulled_changes_to_cases(database, connection_id, batch)
    result.failures.extend(
        Failure(kind, reason, remote_id) for (kind, remote_id), reason in updates.failed.items()
    )


def _patient_of(resource: JsonObject) -> str | None:
    for element in PATIENT_REFERENCE_ELEMENTS:
        value = resource.get(element)
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None
