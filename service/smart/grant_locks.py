"""One asyncio lock per launch grant, so that two refreshes of the same grant in this process
run one after the other: the second then uses the refresh token the first rotated in, instead
of replaying the one the first already spent (which a rotating EHR answers with invalid_grant,
or worse, by revoking the new one). Across processes the grant's version column still makes
the later writer fail with 412 rather than overwrite."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request


class GrantLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def for_grant(self, grant_id: str) -> asyncio.Lock:
        # No await between the lookup and the insert: atomic under asyncio.
        return self._locks.setdefault(grant_id, asyncio.Lock())


async def get_grant_locks(request: Request) -> GrantLocks:
    locks: GrantLocks | None = getattr(request.app.state, "smart_grant_locks", None)
    if locks is None:
        locks = GrantLocks()
        request.app.state.smart_grant_locks = locks
    return locks


GrantLocksDep = Annotated[GrantLocks, Depends(get_grant_locks)]
