"""Writes audit records in the background, in batches, so a read costs no extra write on its
own path. Records wait in a bounded in-memory queue; `close` (at shutdown) writes what is left.
A failed batch is retried; only a queue overflow (the database gone for long) drops records,
and each drop is logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert

from service.audit.models import AuditPatient, AuditRecord
from service.db.base import Base
from service.db.session import Database

log = logging.getLogger(__name__)

BATCH = 500
# After the first record arrives, wait this long for more: one insert then carries many reads.
GATHER_SECONDS = 0.05
QUEUE_LIMIT = 50_000
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class AuditEntry:
    """One audit row (the `audit_events` columns) and the patients it concerns."""

    row: dict[str, Any]
    patient_ids: tuple[str, ...] = ()


def _table(model: type[Base]) -> Table:
    """The model's Core table: inserting through it skips the ORM's bulk machinery."""
    return Base.metadata.tables[model.__tablename__]


class AuditRecorder:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-recorder")

    def record(self, entry: AuditEntry) -> None:
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            log.error("audit queue full: dropped the audit record %s", entry.row["id"])

    async def flush(self) -> None:
        """Wait until every record queued so far is written."""
        await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.wait_for(self.flush(), timeout=30)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(GATHER_SECONDS)
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            while True:
                try:
                    await self._write(batch)
                    break
                except Exception:
                    log.exception("writing %d audit records failed; retrying", len(batch))
                    await asyncio.sleep(RETRY_SECONDS)
            for _ in batch:
                self._queue.task_done()

    async def _write(self, batch: list[AuditEntry]) -> None:
        # Core executemany, not ORM objects: the trail is append-only and this runs per read.
        patients = [
            {"event_id": entry.row["id"], "patient_id": patient}
            for entry in batch
            for patient in entry.patient_ids
        ]
        async with self._database.transaction() as session:
            await session.execute(insert(_table(AuditRecord)), [e.row for e in batch])
            if patients:
                await session.execute(insert(_table(AuditPatient)), patients)
