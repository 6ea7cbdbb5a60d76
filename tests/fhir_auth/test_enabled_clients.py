"""The enabled-clients cache under concurrency: a change made while a read is under way is not
covered up by that read, and requests that waited for a read do not read again for nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, cast

from service.db.session import Database
from service.fhir_auth.enabled_clients import EnabledClients


class Registry:
    """Stands in for the database: each read returns `enabled` as it is when the read ends,
    and waits for `release` when `hold` is set."""

    def __init__(self, *enabled: str) -> None:
        self.enabled = set(enabled)
        self.reads = 0
        self.hold = False
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def scalars(self, _statement: object) -> Iterable[str]:
        self.reads += 1
        snapshot = set(self.enabled)  # what the read's transaction sees
        if self.hold:
            self.hold = False
            self.reading.set()
            await self.release.wait()
        return snapshot

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[Any]:
        yield self


def as_database(registry: Registry) -> Database:
    return cast(Database, registry)


async def test_a_change_forgotten_during_a_read_is_read_again() -> None:
    registry = Registry("app-1")
    database = as_database(registry)
    enabled = EnabledClients()
    registry.hold = True
    asking = asyncio.create_task(enabled.allows(database, "app-1", time.time()))
    await registry.reading.wait()  # the read has seen app-1 enabled ...
    registry.enabled.clear()  # ... and then an admin on this process disables it
    enabled.forget()
    registry.release.set()
    assert await asking is False
    assert registry.reads == 2
    # The second read counts as fresh: a token older than it is refused without reading.
    assert await enabled.allows(database, "app-1", time.time() - 60) is False
    assert registry.reads == 2


async def test_requests_that_waited_for_a_read_use_it() -> None:
    registry = Registry("app-1")
    database = as_database(registry)
    enabled = EnabledClients()
    registry.hold = True
    now = time.time()
    asking = [asyncio.create_task(enabled.allows(database, "app-1", now)) for _ in range(5)]
    await registry.reading.wait()
    registry.release.set()
    assert await asyncio.gather(*asking) == [True] * 5
    assert registry.reads == 1
