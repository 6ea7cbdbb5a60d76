"""Writing the outbox: the step of `UnitOfWork.commit` that follows the projection.

For every case whose resources got new versions in the unit of work, and every EHR connection
its patient is linked to, it adds an outbox row and marks the pair's sync row pending, in the
same transaction as the change. A save that changed nothing projected writes nothing.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.cases.models import Case
from service.db.base import new_id, utcnow
from service.links.models import PatientLink
from service.push.dialect import is_postgres
from service.push.held_back import empty_drafts
from service.push.models import PushOutboxEntry, PushSync, SyncStatus

# A new change wakes a pair that was done (or could not be written before), also one whose
# open conflicts hold back their own resources: the rest of the case keeps flowing. A pair in
# flight, failed (retried on its schedule) or dead-lettered keeps its state.
WOKEN_BY_A_CHANGE = (SyncStatus.synced, SyncStatus.unsupported, SyncStatus.conflict)
# Built once: every write runs it, and composing it per call cost more than running it.
_PAIRS = (
    select(Case.id, PatientLink.connection_id)
    .join(PatientLink, PatientLink.patient_id == Case.patient_id)
    .where(Case.id.in_(bindparam("case_ids", expanding=True)))
)


async def enqueue_pushes(
    session: AsyncSession, versioned: dict[str, str | None], linked: set[str]
) -> None:
    """Queue a push of each case in `versioned` (case id -> author) and of every case of the
    `linked` patients, to each connection its patient is linked to."""
    reprojected = dict(versioned)
    if linked:
        # A newly linked patient's cases go to the EHR as they are.
        for case_id in await session.scalars(select(Case.id).where(Case.patient_id.in_(linked))):
            reprojected.setdefault(case_id, None)
    if not reprojected:
        return
    # The pairs first: most cases' patients are linked nowhere, and then that one query is all.
    pairs = (await session.execute(_PAIRS, {"case_ids": list(reprojected)})).all()
    if not pairs:
        return
    drafts = await empty_drafts(session, sorted({case_id for case_id, _ in pairs}))
    # An empty draft plan waits for content (see held_back).
    queued = [(case_id, to, reprojected[case_id]) for case_id, to in pairs if case_id not in drafts]
    if queued:
        await _queue(session, queued)


async def enqueue_pair(
    session: AsyncSession, case_id: str, connection_id: str, author: str | None
) -> None:
    """Queue a push of one pair: a resolved conflict's resource goes to the EHR next (also
    when a push of the pair is in flight now: it settles to pending, not past this row)."""
    await _queue(session, [(case_id, connection_id, author)])


async def _queue(session: AsyncSession, pairs: list[tuple[str, str, str | None]]) -> None:
    """An outbox row for each (case, connection, author), and each pair's sync row woken."""
    # Pair rows are locked in one order everywhere (the dispatcher records outcomes in it too),
    # so two transactions that lock several never wait on each other in a cycle.
    pairs = sorted(pairs, key=lambda pair: pair[:2])
    now = utcnow()
    session.add_all(
        PushOutboxEntry(
            case_id=case_id,
            connection_id=connection_id,
            author=author,
            created_at=now,
        )
        for case_id, connection_id, author in pairs
    )
    for case_id, connection_id, _author in pairs:
        await _ensure_sync_row(session, case_id, connection_id)
        # Lock the pair's row (PostgreSQL) before reading its status: a worker finishing the
        # pair at this moment then waits for this commit and sees the new outbox row, instead
        # of marking the pair synced past it (an UPDATE that filters the row out locks nothing).
        await session.execute(
            select(PushSync.id)
            .where(PushSync.case_id == case_id, PushSync.connection_id == connection_id)
            .with_for_update()
        )
        await session.execute(
            update(PushSync)
            .where(
                PushSync.case_id == case_id,
                PushSync.connection_id == connection_id,
                PushSync.status.in_(WOKEN_BY_A_CHANGE),
            )
            .values(status=SyncStatus.pending, next_attempt_at=now, last_error=None)
        )
    await session.flush()


async def _ensure_sync_row(session: AsyncSession, case_id: str, connection_id: str) -> None:
    """Insert the pair's sync row unless it exists; concurrent transactions never collide."""
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    await session.execute(
        insert(PushSync)
        .values(
            id=new_id(),
            case_id=case_id,
            connection_id=connection_id,
            status=SyncStatus.pending,
            attempts=0,
            next_attempt_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["case_id", "connection_id"])
    )
