"""The engine keeps `database_pool_size` connections open for the next requests, and opens
and closes the overflow beyond it for each use (what made concurrent reads slow when the pool
was smaller than the requests in flight; docs/fhir-api.md, issue #15)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, text

from service.db.session import create_engine
from tests.conftest import settings_for

POOL = 6
OVERFLOW = 2
ROUNDS = 3


async def _rounds(engine: Any, at_once: int) -> None:
    """`ROUNDS` times, `at_once` connections held at the same moment."""

    async def one(together: asyncio.Barrier) -> None:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
            await together.wait()  # every connection is checked out at once

    for _ in range(ROUNDS):
        together = asyncio.Barrier(at_once)
        await asyncio.gather(*(one(together) for _ in range(at_once)))


async def test_connections_up_to_the_pool_size_are_kept_and_the_overflow_is_not(
    database_url: str,
) -> None:
    settings = settings_for(database_url, database_pool_size=POOL, database_max_overflow=OVERFLOW)
    engine = create_engine(settings)
    opened = 0

    def count(*_: Any) -> None:
        nonlocal opened
        opened += 1

    event.listen(engine.sync_engine, "connect", count)
    try:
        await _rounds(engine, POOL)
        assert opened == POOL  # opened once, reused by the next rounds
        await _rounds(engine, POOL + OVERFLOW)
        assert opened == POOL + OVERFLOW * ROUNDS  # the overflow is reopened every round
    finally:
        await engine.dispose()
