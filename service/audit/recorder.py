"""Writes audit records durably before the response that they record is sent.

A request hands its record to `write` and waits: the record is committed, or `write` raises
`AuditUnavailable` and the request answers an error instead of its result (fail closed: HIPAA
§164.312(b) asks that access to patient data be recorded, so an access that cannot be recorded
is not given). Throughput comes from group commit: one writer task commits, in one short
transaction, every record that arrived while the previous transaction ran, so concurrent
requests share a commit instead of queueing for one each. Nothing waits in memory after its
response was sent, so a crash loses no record of an answered request, and an overflow
refuses new requests (503) rather than dropping records.

Background work (pulls, pushes) writes its records in its own transactions through
`insert_audit_entries`, not through this queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.audit.models import AuditPatient, AuditRecord
from service.db.base import Base
from service.db.session import Database

log = logging.getLogger(__name__)

BATCH = 500
# Records waiting for a commit beyond this refuse new ones (the database is too slow or gone).
PENDING_LIMIT = 10_000


class AuditUnavailable(Exception):
    """The audit record could not be committed; the request it records must not succeed."""


@dataclass(frozen=True)
class AuditEntry:
    """One audit row (the `audit_events` columns) and the patients it concerns."""

    row: dict[str, Any]
    patient_ids: tuple[str, ...] = ()


def _table(model: type[Base]) -> Table:
    """The model's Core table: inserting through it skips the ORM's bulk machinery."""
    return Base.metadata.tables[model.__tablename__]


async def insert_audit_entries(
    executor: AsyncSession | AsyncConnection, entries: Sequence[AuditEntry]
) -> None:
    """Insert audit rows in the caller's transaction (Core executemany: the trail is
    append-only and this runs per read)."""
    if not entries:
        return
    patients = [
        {"event_id": entry.row["id"], "patient_id": patient}
        for entry in entries
        for patient in entry.patient_ids
    ]
    await executor.execute(insert(_table(AuditRecord)), [e.row for e in entries])
    if patients:
        await executor.execute(insert(_table(AuditPatient)), patients)


class AuditRecorder:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._waiting: list[tuple[AuditEntry, asyncio.Future[None]]] = []
        self._writing = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Records handed in and not yet committed (waiting, or in the transaction)."""
        return len(self._waiting) + self._writing

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-recorder")

    async def write(self, entry: AuditEntry) -> None:
        """Return once `entry` is committed; raise AuditUnavailable if it cannot be."""
        if self._closed or self._task is None or self._task.done():
            raise AuditUnavailable("the audit recorder is not running")
        if self.pending >= PENDING_LIMIT:
            raise AuditUnavailable(f"{self.pending} audit records wait for the database")
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, committed))
        self._idle.clear()
        self._wake.set()
        # Shielded: a client that disconnects does not cancel the write of its record.
        await asyncio.shield(committed)

    async def flush(self) -> None:
        """Wait until every record handed in so far is committed (or refused)."""
        await self._idle.wait()

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await asyncio.wait_for(self.flush(), timeout=30)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
                self._writing = len(batch)
                try:
                    # Plain Core, no ORM session: its cost per transaction shows on every read.
                    async with self._database.connection() as connection:
                        await insert_audit_entries(connection, [entry for entry, _ in batch])
                except Exception as exc:
                    # The type only: a database error's text carries the rows' parameters.
                    log.error("writing %d audit records failed: %s", len(batch), type(exc).__name__)
                    failure = AuditUnavailable("the audit trail could not be written")
                    for _, committed in batch:
                        if not committed.done():
                            committed.set_exception(failure)
                else:
                    for _, committed in batch:
                        if not committed.done():
                            committed.set_result(None)
                finally:
                    self._writing = 0
            self._idle.set()
