"""SMART Backend Services: `client_credentials` with a `private_key_jwt` assertion, and a token
cache per connection and scope set.

authlib owns the grant: it builds the form, signs the assertion through joserfc and parses the
answer. What is ours is the SMART profile of the assertion (explicit alg, `kid` and `typ`
headers, a fresh `jti`, `exp` under five minutes) and the cache:

- a token is reused until a margin before it expires, then replaced: the margin is a fifth of
  the token's lifetime, at most `refresh_margin_seconds` (60 s), so a 300 s token (SMART's
  usual) is replaced a minute early and a 60 s one after 48 s, never on every request;
- each (connection, scope set) has one asyncio lock, and the cache is checked again under it,
  so a hundred callers that find the token missing cause one token request, not a hundred;
- `reauthenticate(rejected)` (the FHIR client calls it on a 401) fetches a new token only if
  the rejected one is still the cached one: concurrent 401s lead to one new token;
- with a `SharedTokenStore` (service.smart.shared_tokens), tokens are shared by every process
  through the database: one process fetches, the others read what it stored;
- with a `KeySource`, each token request signs with the connection's keys as stored at that
  moment, not as they were when the grant was built: a pull job that runs for hours crosses
  key rotations (a rotated-out key leaves the published JWKS once its overlap ends).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign

from service.db.session import Database
from service.ehr.pinned_transport import vetted_transport
from service.ehr.url_policy import UrlPolicy
from service.security.encryption import SecretBox
from service.smart.keys import ScheduledSigningKey, SigningKey, key_signing_at
from service.smart.oauth_client import AsyncOAuth2Client
from service.smart.shared_tokens import SharedTokenStore, StoredToken
from service.smart.token_requests import checked_token, mapped_token_errors

# A connection's signing keys as stored now (oldest first), or None if it has none any more.
KeySource = Callable[[str], Awaitable[tuple[ScheduledSigningKey, ...] | None]]

# SMART caps `exp` at five minutes ahead; four leaves room for our clock running fast.
ASSERTION_LIFETIME_SECONDS = 240
# The share of a token's lifetime kept as refresh margin (under the ceiling).
REFRESH_MARGIN_SHARE = 0.2


def refresh_margin(lifetime: float, ceiling: float) -> float:
    """How long before expiry a token is replaced: proportional to its lifetime, so that a
    short-lived token is still reused (a fixed 60 s margin fetched a 60 s token on every
    request), and always less than the lifetime."""
    return min(ceiling, REFRESH_MARGIN_SHARE * lifetime)


@dataclass(frozen=True)
class BackendServicesGrant:
    """Everything one token request needs; built from a connection row."""

    connection_id: str
    token_endpoint: str
    client_id: str
    scopes: tuple[str, ...]
    # More than one during a key rotation's overlap: the one whose time has come signs.
    signing_keys: tuple[ScheduledSigningKey, ...]

    @property
    def signing_key(self) -> SigningKey:
        return key_signing_at(self.signing_keys, datetime.now(UTC))

    @property
    def cache_key(self) -> tuple[str, frozenset[str]]:
        return (self.connection_id, frozenset(self.scopes))


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float
    scope: str
    lifetime: float = 300.0


class SmartPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]  # authlib is untyped
    """authlib's `private_key_jwt` client authentication with the SMART assertion profile."""

    def __init__(self, signing_key: SigningKey, lifetime_seconds: int) -> None:
        super().__init__(alg=signing_key.alg)
        self._signing_key = signing_key
        self._lifetime_seconds = lifetime_seconds

    def sign(self, auth: Any, token_endpoint: str) -> str:
        # Fresh header and claims dicts on every call: authlib writes the `jti` into the claims
        # dict it is given, so a shared one would repeat the same `jti` in every assertion.
        assertion: str = private_key_jwt_sign(
            self._signing_key.jwk,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self._signing_key.alg,
            header={"kid": self._signing_key.kid, "typ": "JWT"},
            expires_in=self._lifetime_seconds,
        )
        return assertion


class _Slot:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.token: CachedToken | None = None


class BackendServicesTokens:
    """The process-wide token cache. One instance per application."""

    def __init__(
        self,
        *,
        policy: UrlPolicy,
        timeout_seconds: float = 30.0,
        refresh_margin_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        shared: SharedTokenStore | None = None,
        keys: KeySource | None = None,
    ) -> None:
        self._policy = policy
        self._shared = shared
        self._keys = keys
        self._timeout_seconds = timeout_seconds
        self._refresh_margin_seconds = refresh_margin_seconds
        self._clock = clock
        self._slots: dict[tuple[str, frozenset[str]], _Slot] = {}

    def provider(self, grant: BackendServicesGrant) -> BackendServicesTokenProvider:
        return BackendServicesTokenProvider(self, grant)

    async def access_token(self, grant: BackendServicesGrant) -> str:
        slot = self._slot(grant)
        if self._fresh(slot.token):
            assert slot.token is not None
            return slot.token.access_token
        async with slot.lock:
            # Another caller may have refreshed while this one waited for the lock.
            if not self._fresh(slot.token):
                slot.token = await self._obtain(grant, self._fresh)
            assert slot.token is not None
            return slot.token.access_token

    async def reauthenticate(self, grant: BackendServicesGrant, rejected_token: str) -> str:
        slot = self._slot(grant)
        async with slot.lock:
            if slot.token is None or slot.token.access_token == rejected_token:
                slot.token = await self._obtain(
                    grant, lambda token: self._fresh(token) and token.access_token != rejected_token
                )
            return slot.token.access_token

    async def fresh_token(self, grant: BackendServicesGrant) -> CachedToken:
        """A new token, bypassing and then refilling the cache: an admin's credential check."""
        slot = self._slot(grant)
        async with slot.lock:
            slot.token = await self._request_token(grant)
            if self._shared is not None:
                await self._shared.store(
                    grant.connection_id, grant.cache_key[1], _stored(slot.token)
                )
            return slot.token

    def forget(self, connection_id: str) -> None:
        """Drop a connection's tokens (after its deletion or a change of client id). Shared
        tokens are dropped by `forget_shared`, or with the connection's row."""
        for key in [key for key in self._slots if key[0] == connection_id]:
            del self._slots[key]

    async def forget_shared(self, connection_id: str) -> None:
        self.forget(connection_id)
        if self._shared is not None:
            await self._shared.forget(connection_id)

    async def _obtain(
        self, grant: BackendServicesGrant, usable: Callable[[CachedToken], bool]
    ) -> CachedToken:
        """A token from the endpoint, or from the shared store when there is one."""
        if self._shared is None:
            return await self._request_token(grant)

        async def fetch() -> StoredToken:
            return _stored(await self._request_token(grant))

        stored = await self._shared.obtain(
            grant.connection_id,
            grant.cache_key[1],
            usable=lambda token: usable(_cached(token)),
            fetch=fetch,
        )
        return _cached(stored)

    def _slot(self, grant: BackendServicesGrant) -> _Slot:
        # No await between the lookup and the insert: atomic under asyncio.
        return self._slots.setdefault(grant.cache_key, _Slot())

    def _fresh(self, token: CachedToken | None) -> bool:
        if token is None:
            return False
        margin = refresh_margin(token.lifetime, self._refresh_margin_seconds)
        return token.expires_at - margin > self._clock()

    async def _request_token(self, grant: BackendServicesGrant) -> CachedToken:
        url = grant.token_endpoint
        await self._policy.check(url)
        signing_key = await self._signing_key(grant)
        requested_at = self._clock()
        async with (
            mapped_token_errors(url, "client_credentials"),
            AsyncOAuth2Client(
                client_id=grant.client_id,
                token_endpoint_auth_method=SmartPrivateKeyJWT(
                    signing_key, ASSERTION_LIFETIME_SECONDS
                ),
                scope=" ".join(grant.scopes),
                transport=vetted_transport(self._policy),
                timeout=self._timeout_seconds,
                follow_redirects=False,
            ) as oauth,
        ):
            token = await oauth.fetch_token(url, grant_type="client_credentials")
        checked = checked_token(token, requested_at, url)
        return CachedToken(
            checked.access_token,
            checked.expires_at,
            checked.scope,
            lifetime=checked.expires_at - requested_at,
        )

    async def _signing_key(self, grant: BackendServicesGrant) -> SigningKey:
        stored = await self._keys(grant.connection_id) if self._keys is not None else None
        return key_signing_at(stored, datetime.now(UTC)) if stored else grant.signing_key


def _stored(token: CachedToken) -> StoredToken:
    return StoredToken(token.access_token, token.expires_at, token.lifetime, token.scope)


def _cached(token: StoredToken) -> CachedToken:
    return CachedToken(token.access_token, token.expires_at, token.scope, token.lifetime)


class BackendServicesTokenProvider:
    """A `service.ehr.client.TokenProvider` bound to one grant."""

    def __init__(self, tokens: BackendServicesTokens, grant: BackendServicesGrant) -> None:
        self._tokens = tokens
        self._grant = grant

    async def access_token(self) -> str:
        return await self._tokens.access_token(self._grant)

    async def reauthenticate(self, rejected_token: str) -> str:
        return await self._tokens.reauthenticate(self._grant, rejected_token)


def shared_backend_tokens(
    database: Database, policy: UrlPolicy, keys: KeySource | None = None
) -> BackendServicesTokens:
    """A token cache whose tokens every process using `database` shares; `keys` (see
    service.connections.fhir_clients.stored_signing_keys) reads each connection's keys anew at
    every token request."""
    settings = database.settings
    assert settings.encryption_key is not None  # the settings validator guarantees one
    box = SecretBox(settings.encryption_key.get_secret_value())
    return BackendServicesTokens(
        policy=policy,
        timeout_seconds=settings.ehr_timeout_seconds,
        shared=SharedTokenStore(database, box, clock=time.time),
        keys=keys,
    )
