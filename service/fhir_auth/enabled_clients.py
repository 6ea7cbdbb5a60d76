"""Which registered clients may still use the access tokens they hold: the enabled ones, as this
process last read the registry.

An access token is checked by its signature and claims alone, so without this a client that an
admin disabled or deleted would keep reading /fhir until its tokens expired. The registry is
small and read whole, again after `REFRESH_SECONDS`: a change made on another process takes
effect within that, one made on this process at once (`forget`). A token issued after the last
read may be a new client's, so a client missing from the set is looked up again then.
"""

from __future__ import annotations

import asyncio
import math
import time

from sqlalchemy import select

from service.db.session import Database
from service.fhir_auth.models import FhirClient

REFRESH_SECONDS = 5.0
# Processes' clocks differ, and `iat` is in whole seconds: a token issued this long before a
# read began may still be newer than what the read saw.
ISSUE_SKEW_SECONDS = 5.0

_ENABLED = select(FhirClient.client_id).where(FhirClient.enabled.is_(True))


class EnabledClients:
    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._refresh_seconds = refresh_seconds
        self._ids: frozenset[str] = frozenset()
        # When the read behind `_ids` began: monotonic for the refresh, epoch against `iat`.
        self._read_at = -math.inf
        self._read_at_wall = -math.inf
        # Moved on by `forget`: a read that began before a change must not be taken as fresh.
        self._generation = 0
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Read the registry again on next use (this process changed it)."""
        self._generation += 1
        self._read_at = self._read_at_wall = -math.inf

    async def allows(self, database: Database, client_id: str, issued_at: float) -> bool:
        if self._needs_read(client_id, issued_at):
            async with self._lock:
                if self._needs_read(client_id, issued_at):  # not read by whom it waited for
                    await self._read(database)
        return client_id in self._ids

    def _needs_read(self, client_id: str, issued_at: float) -> bool:
        stale = time.monotonic() - self._read_at >= self._refresh_seconds
        newer_token = issued_at >= self._read_at_wall - ISSUE_SKEW_SECONDS
        return stale or (client_id not in self._ids and newer_token)

    async def _read(self, database: Database) -> None:
        while True:
            generation = self._generation
            read_at, read_at_wall = time.monotonic(), time.time()
            async with database.transaction(write=False) as session:
                ids = frozenset(await session.scalars(_ENABLED))
            self._ids = ids
            if generation == self._generation:
                self._read_at, self._read_at_wall = read_at, read_at_wall
                return
            # forgotten meanwhile: this read may predate the change; read again
