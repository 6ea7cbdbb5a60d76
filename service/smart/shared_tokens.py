"""Backend Services access tokens shared by every process through the database.

Each process (API worker, push worker, pull runner, replica) used to fetch its own token for a
connection. Here the token lives in `smart_shared_tokens`, encrypted with the service's key
(service.security.encryption), with its expiry and lifetime. A process that finds it missing
or due for refresh takes the row's fetch lease (a guarded UPDATE, atomic on SQLite and
PostgreSQL alike: no lock is held while the EHR answers), fetches, stores and gives the lease
back; the others poll the row until the new token is there, or the lease runs out (its holder
died) and one of them takes it over. The guard also names the token the taker saw, so a process
that read a stale row just before another stored a fresh one does not fetch a second time.

In-process callers are already serialized per (connection, scope set) by the cache's own lock
(service.smart.backend_services), so the database sees one caller per process.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.base import new_id
from service.db.session import Database
from service.security.encryption import SecretBox
from service.smart.models import SharedAccessToken

# Long enough for a token request with its retries; a dead holder's lease frees after it.
FETCH_LEASE_SECONDS = 60.0
POLL_SECONDS = 0.1

_tokens = cast(Table, SharedAccessToken.__table__)
_token = _tokens.c


def scope_key(scopes: frozenset[str]) -> str:
    return hashlib.sha256(" ".join(sorted(scopes)).encode()).hexdigest()


def token_digest(access_token: str) -> str:
    return hashlib.sha256(access_token.encode()).hexdigest()


class StoredToken:
    """A token as the database holds it, decrypted."""

    def __init__(self, access_token: str, expires_at: float, lifetime: float, scope: str) -> None:
        self.access_token = access_token
        self.expires_at = expires_at
        self.lifetime = lifetime
        self.scope = scope


class SharedTokenStore:
    def __init__(
        self,
        database: Database,
        box: SecretBox,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        lease_seconds: float = FETCH_LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._database = database
        self._box = box
        self._clock = clock
        self._sleep = sleep
        self._lease_seconds = lease_seconds
        self._poll_seconds = poll_seconds

    async def obtain(
        self,
        connection_id: str,
        scopes: frozenset[str],
        *,
        usable: Callable[[StoredToken], bool],
        fetch: Callable[[], Awaitable[StoredToken]],
    ) -> StoredToken:
        """The stored token if `usable`; else one fetched by this process (holding the lease)
        or by another (waited for)."""
        key = scope_key(scopes)
        while True:
            stored, digest = await self._read(connection_id, key)
            if stored is not None and usable(stored):
                return stored
            lease = await self._take_lease(connection_id, key, digest)
            if lease is None:
                await self._sleep(self._poll_seconds)  # another process is fetching
                continue
            try:
                fresh = await fetch()
            except BaseException:
                await self._give_back(connection_id, key, lease)
                raise
            await self.store(connection_id, scopes, fresh, lease=lease)
            return fresh

    async def store(
        self,
        connection_id: str,
        scopes: frozenset[str],
        token: StoredToken,
        *,
        lease: str | None = None,
    ) -> None:
        """Write a token (and give back `lease`, when one was held)."""
        key = scope_key(scopes)
        async with self._database.connection() as connection:
            await self._ensure_row(connection, connection_id, key)
            await connection.execute(
                update(_tokens)
                .where(_token.connection_id == connection_id, _token.scope_key == key)
                .values(
                    encrypted_access_token=self._box.encrypt_text(token.access_token),
                    token_sha256=token_digest(token.access_token),
                    scope=token.scope,
                    expires_at=token.expires_at,
                    lifetime_seconds=token.lifetime,
                    fetch_lease_token=None,
                    fetch_lease_expires_at=None,
                )
            )

    async def forget(self, connection_id: str) -> None:
        async with self._database.connection() as connection:
            await connection.execute(
                update(_tokens)
                .where(_token.connection_id == connection_id)
                .values(encrypted_access_token=None, token_sha256=None, expires_at=None)
            )

    async def _read(self, connection_id: str, key: str) -> tuple[StoredToken | None, str | None]:
        async with self._database.connection(write=False) as connection:
            row = (
                await connection.execute(
                    select(
                        _token.encrypted_access_token,
                        _token.token_sha256,
                        _token.expires_at,
                        _token.lifetime_seconds,
                        _token.scope,
                    ).where(_token.connection_id == connection_id, _token.scope_key == key)
                )
            ).first()
        if row is None or row.encrypted_access_token is None:
            return None, None
        token = StoredToken(
            self._box.decrypt_text(row.encrypted_access_token),
            float(row.expires_at),
            float(row.lifetime_seconds),
            row.scope,
        )
        return token, row.token_sha256

    async def _take_lease(self, connection_id: str, key: str, seen: str | None) -> str | None:
        """The lease token when this process may fetch: the lease is free (or ran out) and
        the row still holds the token it saw."""
        lease = new_id()
        now = self._clock()
        async with self._database.connection() as connection:
            await self._ensure_row(connection, connection_id, key)
            result = await connection.execute(
                update(_tokens)
                .where(
                    _token.connection_id == connection_id,
                    _token.scope_key == key,
                    or_(
                        _token.fetch_lease_expires_at.is_(None),
                        _token.fetch_lease_expires_at < now,
                    ),
                    _token.token_sha256.is_(None) if seen is None else _token.token_sha256 == seen,
                )
                .values(fetch_lease_token=lease, fetch_lease_expires_at=now + self._lease_seconds)
            )
        return lease if getattr(result, "rowcount", 0) else None

    async def _give_back(self, connection_id: str, key: str, lease: str) -> None:
        async with self._database.connection() as connection:
            await connection.execute(
                update(_tokens)
                .where(
                    _token.connection_id == connection_id,
                    _token.scope_key == key,
                    _token.fetch_lease_token == lease,
                )
                .values(fetch_lease_token=None, fetch_lease_expires_at=None)
            )

    @staticmethod
    async def _ensure_row(connection: AsyncConnection, connection_id: str, key: str) -> None:
        module: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
        await connection.execute(
            module.insert(_tokens)
            .values(id=new_id(), connection_id=connection_id, scope_key=key, scope="")
            .on_conflict_do_nothing(index_elements=["connection_id", "scope_key"])
        )
