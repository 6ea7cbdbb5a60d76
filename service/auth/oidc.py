"""Verification of bearer JWTs from the configured OIDC issuer, against its JWKS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from service.errors import ServiceUnavailable, Unauthenticated

JWKS_TTL_SECONDS = 600
CLOCK_SKEW_SECONDS = 30
REFETCH_INTERVAL_SECONDS = 10.0


class OidcVerifier:
    """Checks signature (against the issuer's JWKS), alg, iss, aud, exp and nbf.

    An unknown `kid` refreshes the JWKS (the issuer may have rotated its keys), then fails;
    refreshes are serialized so a burst of requests causes one fetch, and happen at most once
    per `refetch_interval_seconds`: anyone can send a token naming a `kid` the issuer never
    had, and without that pause each one would make us fetch the key set again."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str,
        audience: str,
        algorithms: tuple[str, ...],
        http: httpx.AsyncClient | None = None,
        *,
        refetch_interval_seconds: float = REFETCH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.algorithms = list(algorithms)
        self._http = http or httpx.AsyncClient(timeout=10)
        self._keys: KeySet | None = None
        self._refetch_interval = refetch_interval_seconds
        self._clock = clock
        self._fetched_at = self._attempted_at = -float("inf")
        self._lock = asyncio.Lock()
        self._claims = JWTClaimsRegistry(
            leeway=CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            now = self._clock()
            stale = now - self._fetched_at > JWKS_TTL_SECONDS or refresh
            if self._keys is None or stale:
                if now - self._attempted_at < self._refetch_interval:
                    if self._keys is None:  # the last attempt failed, moments ago
                        raise ServiceUnavailable("cannot load the issuer's JWKS (failed lately)")
                    return self._keys
                self._attempted_at = now
                try:
                    response = await self._http.get(self.jwks_url)
                    response.raise_for_status()
                    self._keys = KeySet.import_key_set(response.json())
                except (httpx.HTTPError, ValueError, JoseError) as exc:
                    raise ServiceUnavailable(f"cannot load the issuer's JWKS: {exc}") from exc
                self._fetched_at = self._clock()
            return self._keys

    async def aclose(self) -> None:
        await self._http.aclose()

    async def verify(self, token: str) -> dict[str, Any]:
        try:
            try:
                decoded = jwt.decode(token, await self._key_set(), algorithms=self.algorithms)
            except InvalidKeyIdError:
                decoded = jwt.decode(
                    token, await self._key_set(refresh=True), algorithms=self.algorithms
                )
            self._claims.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise Unauthenticated(f"bearer token rejected: {exc}") from exc
        return decoded.claims
