"""The unit of work of a case change: the session it runs in, and what it changed.

A `UnitOfWork` is the session a write runs in (an `AsyncSession`, so domain code that reads and
flushes takes it as one), carrying the `ChangeSet` that the code changing cases and patients
notes into explicitly. It is opened and committed at the request or job boundary
(`Database.unit_of_work`), never by a hook: `commit()` projects exactly the records that
changed, writes their new versions, Provenance and search-index rows, enqueues the outbox, and
commits, in that order and in one transaction. See docs/write-path.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.db.changes import ChangeSet
from service.fhir_store import projector
from service.fhir_store.models import StoredResource
from service.push import outbox


class UnitOfWork(AsyncSession):
    """A session with its change set; commit() is the whole write path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.changes = ChangeSet()
        self._versioned: dict[str, str | None] = {}
        self._linked: set[str] = set()
        # The rows the projection stored, held until commit: the session's identity map holds
        # rows weakly, and a caller reading one back (`session.get`) then finds it there.
        self._written: list[StoredResource] = []

    async def project(self) -> None:
        """Project what changed so far, now, within the transaction: a /fhir write answers
        with the version it made. The outbox still waits for `commit()`."""
        changes = self.changes.take()
        self._linked |= changes.linked_patients
        projected = await projector.project_changes(self, changes, self._written)
        for case_id, author in projected.items():
            self._versioned[case_id] = author

    async def commit(self) -> None:
        """Project and store the changes, enqueue their pushes, then commit; if any step
        fails, nothing is committed (the caller's context rolls the session back)."""
        await self.project()
        versioned, linked = self._versioned, self._linked
        self._versioned, self._linked, self._written = {}, set(), []
        await outbox.enqueue_pushes(self, versioned, linked)
        await super().commit()
