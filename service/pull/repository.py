"""Every query of the pull domain. Records and cursors are written with INSERT ... ON CONFLICT
DO UPDATE, so a repeated, resumed or concurrent pull never adds a second row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mappings import fhir_json
from service.cases.lifecycle import ENDED
from service.cases.models import Case
from service.connections.models import Connection
from service.db.base import new_id, utcnow
from service.ehr.client import JsonObject
from service.links.models import PatientLink
from service.pull.models import (
    BulkCursor,
    IdentityConflict,
    PullCursor,
    PulledRecord,
    PullJob,
    PullSchedule,
    PullState,
)
from service.pull.reader import parse_instant
from service.pull.summary import StoredRecord


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


async def upsert_records(
    session: AsyncSession,
    connection_id: str,
    patient_id: str | None,
    remote_patient_id: str | None,
    resources: Sequence[JsonObject],
) -> int:
    """Store one patient's resources as pulled (their exact JSON); returns how many."""
    return await upsert_record_rows(
        session, connection_id, [(patient_id, remote_patient_id, r) for r in resources]
    )


async def upsert_record_rows(
    session: AsyncSession,
    connection_id: str,
    rows: Sequence[tuple[str | None, str | None, JsonObject]],
) -> int:
    """Store resources of any patients: (local patient id, remote patient id, resource).

    A resource given twice (an NDJSON file may repeat one) is stored once, as last given:
    PostgreSQL refuses an upsert that touches the same row twice."""
    rows = list({(r[2]["resourceType"], r[2]["id"]): r for r in rows}.values())
    if not rows:
        return 0
    now = utcnow()
    values = [
        {
            "id": new_id(),
            "connection_id": connection_id,
            "resource_type": resource["resourceType"],
            "remote_id": resource["id"],
            "remote_version_id": _meta(resource, "versionId"),
            "remote_last_updated": parse_instant(_meta(resource, "lastUpdated")),
            "patient_id": patient_id,
            "remote_patient_id": remote_patient_id,
            "content": fhir_json.dumps(resource),
            "pulled_at": now,
        }
        for patient_id, remote_patient_id, resource in rows
    ]
    statement = _insert(session, PulledRecord)
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "resource_type", "remote_id"],
        set_={
            name: statement.excluded[name]
            for name in (
                "remote_version_id",
                "remote_last_updated",
                "patient_id",
                "remote_patient_id",
                "content",
                "pulled_at",
            )
        },
    )
    await session.execute(statement, values)
    return len(values)


async def linked_patients(
    session: AsyncSession, connection_id: str, remote_ids: Sequence[str]
) -> dict[str, str]:
    """Local patient ids of the remote patients that are linked, by remote id."""
    if not remote_ids:
        return {}
    rows = await session.execute(
        select(PatientLink.remote_id, PatientLink.patient_id).where(
            PatientLink.connection_id == connection_id,
            PatientLink.remote_id.in_(list(set(remote_ids))),
        )
    )
    return dict(rows.all())


async def bulk_cursor(
    session: AsyncSession, connection_id: str, group_id: str
) -> dt.datetime | None:
    return await session.scalar(
        select(BulkCursor.since).where(
            BulkCursor.connection_id == connection_id, BulkCursor.group_id == group_id
        )
    )


async def advance_bulk_cursor(
    session: AsyncSession, connection_id: str, group_id: str, since: dt.datetime
) -> None:
    statement = _insert(session, BulkCursor)
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "group_id"], set_={"since": statement.excluded["since"]}
    )
    await session.execute(
        statement, [{"connection_id": connection_id, "group_id": group_id, "since": since}]
    )


async def cursors_of(
    session: AsyncSession, connection_id: str, remote_patient_id: str
) -> dict[str, dt.datetime]:
    rows = await session.execute(
        select(PullCursor.resource_type, PullCursor.since).where(
            PullCursor.connection_id == connection_id,
            PullCursor.remote_patient_id == remote_patient_id,
        )
    )
    return dict(rows.all())


async def advance_cursors(
    session: AsyncSession,
    connection_id: str,
    remote_patient_id: str,
    sinces: dict[str, dt.datetime],
) -> None:
    if not sinces:
        return
    statement = _insert(session, PullCursor)
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "remote_patient_id", "resource_type"],
        set_={"since": statement.excluded["since"]},
    )
    await session.execute(
        statement,
        [
            {
                "connection_id": connection_id,
                "remote_patient_id": remote_patient_id,
                "resource_type": resource_type,
                "since": since,
            }
            for resource_type, since in sinces.items()
        ],
    )


async def forget_cursors(
    session: AsyncSession, connection_id: str, remote_patient_id: str, types: Sequence[str]
) -> None:
    """The next pull reads these types in full again."""
    if not types:
        return
    await session.execute(
        delete(PullCursor).where(
            PullCursor.connection_id == connection_id,
            PullCursor.remote_patient_id == remote_patient_id,
            PullCursor.resource_type.in_(list(types)),
        )
    )


async def records_of_patient(
    session: AsyncSession, connection_id: str, patient_id: str
) -> list[PulledRecord]:
    rows = await session.scalars(
        select(PulledRecord)
        .where(PulledRecord.connection_id == connection_id, PulledRecord.patient_id == patient_id)
        .order_by(PulledRecord.resource_type, PulledRecord.remote_id)
    )
    return list(rows)


async def records_with_sources(
    session: AsyncSession,
    patient_id: str,
    *,
    connection_id: str | None = None,
    resource_type: str | None = None,
) -> list[tuple[PulledRecord, str]]:
    """A local patient's pulled records (of one connection, of one type), each with the name of
    the connection it came from."""
    statement = (
        select(PulledRecord, Connection.name)
        .join(Connection, Connection.id == PulledRecord.connection_id)
        .where(PulledRecord.patient_id == patient_id)
    )
    if connection_id is not None:
        statement = statement.where(PulledRecord.connection_id == connection_id)
    if resource_type is not None:
        statement = statement.where(PulledRecord.resource_type == resource_type)
    rows = await session.execute(
        statement.order_by(
            PulledRecord.connection_id, PulledRecord.resource_type, PulledRecord.remote_id
        )
    )
    return [(record, name) for record, name in rows]


async def summary_records(
    session: AsyncSession, patient_id: str, resource_types: Sequence[str]
) -> list[StoredRecord]:
    """Every connection's pulled records of these types for a local patient, with the name of
    the connection each came from."""
    rows = await session.execute(
        select(
            PulledRecord.connection_id,
            Connection.name,
            PulledRecord.resource_type,
            PulledRecord.remote_id,
            PulledRecord.content,
        )
        .join(Connection, Connection.id == PulledRecord.connection_id)
        .where(
            PulledRecord.patient_id == patient_id,
            PulledRecord.resource_type.in_(resource_types),
        )
    )
    return [StoredRecord(*row) for row in rows]


async def stored_resources(
    session: AsyncSession, connection_id: str, remote_patient_id: str, resource_type: str
) -> list[JsonObject]:
    rows = await session.scalars(
        select(PulledRecord.content).where(
            PulledRecord.connection_id == connection_id,
            PulledRecord.remote_patient_id == remote_patient_id,
            PulledRecord.resource_type == resource_type,
        )
    )
    return [fhir_json.loads(content) for content in rows]


async def add_conflict(
    session: AsyncSession,
    connection_id: str,
    remote_patient_id: str,
    candidates: Sequence[str],
    reason: str,
) -> IdentityConflict:
    """The open conflict of this remote patient, updated; or a new one."""
    existing = await session.scalar(
        select(IdentityConflict).where(
            IdentityConflict.connection_id == connection_id,
            IdentityConflict.remote_patient_id == remote_patient_id,
            IdentityConflict.resolved_at.is_(None),
        )
    )
    if existing is not None:
        existing.candidate_patient_ids = sorted(candidates)
        existing.reason = reason
        existing.detected_at = utcnow()
        await session.flush()
        return existing
    conflict = IdentityConflict(
        connection_id=connection_id,
        remote_patient_id=remote_patient_id,
        candidate_patient_ids=sorted(candidates),
        reason=reason,
    )
    session.add(conflict)
    await session.flush()
    return conflict


async def resolved_choice(
    session: AsyncSession, connection_id: str, remote_patient_id: str
) -> str | None:
    """The local patient a person chose for this remote patient, if a conflict was resolved."""
    return await session.scalar(
        select(IdentityConflict.resolved_patient_id)
        .where(
            IdentityConflict.connection_id == connection_id,
            IdentityConflict.remote_patient_id == remote_patient_id,
            IdentityConflict.resolved_patient_id.is_not(None),
        )
        .order_by(IdentityConflict.resolved_at.desc())
        .limit(1)
    )


async def get_conflict(session: AsyncSession, conflict_id: str) -> IdentityConflict | None:
    return await session.get(IdentityConflict, conflict_id)


async def open_conflicts(session: AsyncSession) -> list[IdentityConflict]:
    rows = await session.scalars(
        select(IdentityConflict)
        .where(IdentityConflict.resolved_at.is_(None))
        .order_by(IdentityConflict.detected_at, IdentityConflict.id)
    )
    return list(rows)


async def get_job(session: AsyncSession, job_id: str) -> PullJob | None:
    return await session.get(PullJob, job_id)


async def unfinished_job_count(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(PullJob)
        .where(PullJob.state.in_([PullState.queued, PullState.running]))
    )
    return int(count or 0)


async def claim_jobs(
    session: AsyncSession, limit: int, lease_seconds: float, now: dt.datetime | None = None
) -> tuple[str, list[str]]:
    """Lease up to `limit` jobs: queued ones, and running ones whose lease ran out (their
    runner died). The queue idiom of the push claims: UPDATE ... WHERE id IN (SELECT ... FOR
    UPDATE SKIP LOCKED) RETURNING, so runners on PostgreSQL take different jobs without
    waiting; SQLite's single writer serializes the claims. Returns the lease token and the
    ids of the jobs it holds."""
    token = new_id()
    if limit <= 0:
        return token, []
    moment = now or utcnow()
    due = (
        select(PullJob.id)
        .where(
            or_(
                PullJob.state == PullState.queued,
                and_(
                    PullJob.state == PullState.running,
                    # No lease at all: left running by a runner of before leases.
                    or_(PullJob.lease_expires_at.is_(None), PullJob.lease_expires_at < moment),
                ),
            )
        )
        .order_by(PullJob.created_at, PullJob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(PullJob)
        .where(PullJob.id.in_(due.scalar_subquery()))
        .values(
            state=PullState.running,
            lease_token=token,
            lease_expires_at=moment + dt.timedelta(seconds=lease_seconds),
            started_at=func.coalesce(PullJob.started_at, moment),
        )
        .returning(PullJob.id)
        .execution_options(synchronize_session=False)
    )
    return token, list(result.scalars())


async def renew_job(
    session: AsyncSession, job_id: str, token: str, lease_seconds: float
) -> bool | None:
    """Extend a lease still held: its `cancel_requested`; None when another runner took it."""
    result = await session.execute(
        update(PullJob)
        .where(
            PullJob.id == job_id,
            PullJob.lease_token == token,
            PullJob.state == PullState.running,
        )
        .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds))
        .returning(PullJob.cancel_requested)
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    return None if row is None else bool(row.cancel_requested)


async def release_job(session: AsyncSession, job_id: str, token: str) -> None:
    """Give a job back (its runner is shutting down): queued again, for any runner, at once."""
    await session.execute(
        update(PullJob)
        .where(
            PullJob.id == job_id,
            PullJob.lease_token == token,
            PullJob.state == PullState.running,
        )
        .values(state=PullState.queued, lease_token=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


async def schedule_due(
    session: AsyncSession, name: str, interval_seconds: float, now: dt.datetime | None = None
) -> bool:
    """Whether this runner runs the schedule `name` now: it moves the row's `next_run_at` on
    by one interval with a guarded UPDATE, so across every runner only one does, once per
    interval. The first runner to see the schedule makes its row, due one interval later."""
    moment = now or utcnow()
    interval = dt.timedelta(seconds=interval_seconds)
    statement = _insert(session, PullSchedule).values(name=name, next_run_at=moment + interval)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
    result = await session.execute(
        update(PullSchedule)
        .where(PullSchedule.name == name, PullSchedule.next_run_at <= moment)
        .values(next_run_at=moment + interval, last_run_at=moment)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def refresh_targets(session: AsyncSession) -> dict[str, list[str]]:
    """Remote patient ids of the linked patients of open cases, per connection."""
    rows = await session.execute(
        select(PatientLink.connection_id, PatientLink.remote_id)
        .join(Case, Case.patient_id == PatientLink.patient_id)
        .where(Case.status.not_in(ENDED))
        .distinct()
        .order_by(PatientLink.connection_id, PatientLink.remote_id)
    )
    targets: dict[str, list[str]] = {}
    for connection_id, remote_id in rows.all():
        targets.setdefault(connection_id, []).append(remote_id)
    return targets


async def has_unfinished_job(session: AsyncSession, connection_id: str, requested_by: str) -> bool:
    found = await session.scalar(
        select(PullJob.id)
        .where(
            PullJob.connection_id == connection_id,
            PullJob.requested_by == requested_by,
            PullJob.state.in_([PullState.queued, PullState.running]),
        )
        .limit(1)
    )
    return found is not None


async def note_progress(session: AsyncSession, job_id: str, note: str | None) -> None:
    await session.execute(
        update(PullJob).where(PullJob.id == job_id).values(progress_note=(note or "")[:500])
    )


def _meta(resource: JsonObject, name: str) -> str | None:
    meta = resource.get("meta")
    value = meta.get(name) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None
