"""Delivered outbox rows are a log: who changed a case, and when the EHR got it. They are kept
for `push_outbox_retention_days`, then deleted by the dispatchers, a batch per transaction so
that no prune holds many rows or the writer for long. Undelivered rows are never deleted: they
are pushes still owed.

On PostgreSQL the batch is taken `FOR UPDATE SKIP LOCKED`, so dispatchers pruning at the same
moment take different rows instead of waiting on each other (SQLite compiles no FOR UPDATE;
its single writer serializes them).
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import CursorResult, Table, bindparam, delete, select

from service.push.dialect import Executor
from service.push.models import PushOutboxEntry

PRUNE_BATCH = 1000
# How often a dispatcher prunes once it has caught up.
PRUNE_INTERVAL_SECONDS = 3600.0

_outboxes = cast(Table, PushOutboxEntry.__table__)
_outbox = _outboxes.c

_OLDEST_DELIVERED = (
    select(_outbox.id)
    .where(_outbox.delivered_at < bindparam("cutoff"))
    .order_by(_outbox.delivered_at)
    .limit(bindparam("batch"))
    .with_for_update(skip_locked=True)
)
_PRUNE = delete(_outboxes).where(_outbox.id.in_(_OLDEST_DELIVERED.scalar_subquery()))


async def prune_delivered(executor: Executor, cutoff: dt.datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete up to `batch` outbox rows delivered before `cutoff`, oldest first; how many."""
    result = await executor.execute(_PRUNE, {"cutoff": cutoff, "batch": batch})
    return cast(CursorResult[object], result).rowcount
