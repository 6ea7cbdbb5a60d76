"""Writes audit records durably before the response that they record is sent.

A request hands its record to `write` and waits: the record is committed, or `write` raises
`AuditUnavailable` and the request answers an error instead of its result (fail closed: HIPAA
§164.312(b) asks that access to patient data be recorded, so an access that cannot be recorded
is not given). Throughput comes from group commit: one writer task commits, in one short
transaction, every record that arrived while the previous transaction ran, so concurrent
requests share a commit instead of queueing for one each. Nothing waits in memory after its
response was sent, so a crash loses no record of an answered request, and an overflow
refuses new requests (503) rather than dropping records.

Requests refused before the audit middleware (overload, rate limits, body size) are counted
in `refusals` and written as aggregated events every `refusals.FLUSH_INTERVAL_SECONDS`
through the same queue (see `service.audit.refusals` for why they are not written one by one).

Background work (pulls, pushes) writes its records in its own transactions through
`insert_audit_entries`, not through this queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.audit.events import AuditEntry as AuditEntry
from service.audit.models import AuditPatient, AuditRecord
from service.audit.refusals import FLUSH_INTERVAL_SECONDS, RefusalTally
from service.db.base import Base
from service.db.session import Database

log = logging.getLogger(__name__)

BATCH = 500
# Records waiting for a commit beyond this refuse new ones (the database is too slow or gone).
PENDING_LIMIT = 10_000


class AuditUnavailable(Exception):
    """The audit record could not be committed; the request it records must not succeed."""


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
        self._refusal_task: asyncio.Task[None] | None = None
        self._closed = False
        self.refusals = RefusalTally()

    @property
    def pending(self) -> int:
        """Records handed in and not yet committed (waiting, or in the transaction)."""
        return len(self._waiting) + self._writing

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-recorder")
        self._refusal_task = asyncio.create_task(
            self._write_refusals_every(FLUSH_INTERVAL_SECONDS), name="audit-refusals"
        )

    async def write_refusals(self) -> None:
        """Write the refusals counted so far, one aggregated event per key; on failure they
        are kept for the next attempt (and the failure logged)."""
        tallies = self.refusals.drain()
        if not tallies:
            return
        keys = list(tallies)
        results = await asyncio.gather(
            *(self.write(e) for e in self.refusals.entries(tallies)), return_exceptions=True
        )
        # Only the tallies whose record failed wait for the next attempt: the others are
        # written, and putting them back would count them twice.
        failed = {
            k: tallies[k]
            for k, r in zip(keys, results, strict=True)
            if isinstance(r, BaseException)
        }
        if failed:
            self.refusals.restore(failed)
            first = next(r for r in results if isinstance(r, BaseException))
            log.error("the audit of %d refused requests waits: %s", len(failed), first)

    async def _write_refusals_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self.write_refusals()

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
        if self._refusal_task is not None:
            self._refusal_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refusal_task
            await self.write_refusals()
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
