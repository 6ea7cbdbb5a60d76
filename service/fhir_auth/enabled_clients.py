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
# Processes' clocks differ: a token issued this long before a read may still be newer than it.
ISSUE_SKEW_SECONDS = 2.0

_ENABLED = select(FhirClient.client_id).where(FhirClient.enabled.is_(True))


class EnabledClients:
    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._refresh_seconds = refresh_seconds
        self._ids: frozenset[str] = frozenset()
        self._read_at = -math.inf  # monotonic, for the refresh
        self._read_at_wall = -math.inf  # epoch seconds, against a token's `iat`
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Read the registry again on next use (this process changed it)."""
        self._read_at = self._read_at_wall = -math.inf

    async def allows(self, database: Database, client_id: str, issued_at: float) -> bool:
        stale = time.monotonic() - self._read_at >= self._refresh_seconds
        newer_token = issued_at >= self._read_at_wall - ISSUE_SKEW_SECONDS
        if stale or (client_id not in self._ids and newer_token):
            await self._read(database)
        return client_id in self._ids

    async def _read(self, database: Database) -> None:
        seen = self._read_at
        async with self._lock:
            if self._read_at != seen:
                return  # another request read it while this one waited
            read_at, read_at_wall = time.monotonic(), time.time()
            async with database.transaction(write=False) as session:
                self._ids = frozenset(await session.scalars(_ENABLED))
            self._read_at, self._read_at_wall = read_at, read_at_wall
