"""The public keys of registered clients: inline, or fetched from the client's JWKS URL.

A JWKS URL is an admin's input naming a host we will call, so every fetch passes the SSRF
policy of `service.ehr.url_policy` first and never follows redirects. Fetched sets are cached
per URL for `JWKS_TTL_SECONDS`; an assertion whose `kid` is not in the cached set makes the
caller refresh once (the client may have rotated its keys), unless the set was fetched for
this very request or less than `refetch_interval_seconds` ago (the setting
`jwks_refetch_interval_seconds`): client ids are not secret, so without that pause anyone
could make us fetch a client's JWKS URL once per request they send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from service.ehr.errors import EhrUrlRefused
from service.ehr.url_policy import UrlPolicy

JWKS_TTL_SECONDS = 300
REFRESH_COOLDOWN_SECONDS = 10
MAX_JWKS_BYTES = 64 * 1024


class ClientKeysUnavailable(Exception):
    """The client's keys could not be loaded (refused URL, network, bad document)."""


def import_jwks(document: Any) -> KeySet:
    """A KeySet of the RSA and EC public keys in a JWKS document; ValueError if unusable."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is an object with a `keys` array")
    keys = [k for k in document["keys"] if isinstance(k, dict) and k.get("kty") in ("RSA", "EC")]
    if not keys:
        raise ValueError("the JWKS has no RSA or EC key")
    try:
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"the JWKS cannot be read: {exc}") from exc


@dataclass(frozen=True)
class FetchedKeys:
    keys: KeySet
    fetched_now: bool


class ClientKeyCache:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        refetch_interval_seconds: float = REFRESH_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._refetch_interval = refetch_interval_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, KeySet]] = {}
        # One lock per URL: a slow client's JWKS host delays only that client's requests.
        self._locks: dict[str, asyncio.Lock] = {}

    async def key_set(self, url: str, policy: UrlPolicy, *, refresh: bool = False) -> FetchedKeys:
        async with self._locks.setdefault(url, asyncio.Lock()):
            entry = self._entries.get(url)
            if entry is not None:
                age = self._clock() - entry[0]
                if age < (self._refetch_interval if refresh else JWKS_TTL_SECONDS):
                    return FetchedKeys(entry[1], fetched_now=False)
            keys = await self._fetch(url, policy)
            self._entries[url] = (self._clock(), keys)
            return FetchedKeys(keys, fetched_now=True)

    async def _fetch(self, url: str, policy: UrlPolicy) -> KeySet:
        try:
            checked = await policy.check(url)
            response = await self._http.get(checked, follow_redirects=False)
        except EhrUrlRefused as exc:
            raise ClientKeysUnavailable(f"the JWKS URL is refused: {exc.detail}") from exc
        except httpx.HTTPError as exc:
            raise ClientKeysUnavailable(f"the JWKS URL cannot be fetched: {exc}") from exc
        if response.status_code != 200:
            raise ClientKeysUnavailable(f"the JWKS URL answered {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise ClientKeysUnavailable("the JWKS document is too large")
        try:
            return import_jwks(response.json())
        except ValueError as exc:
            raise ClientKeysUnavailable(str(exc)) from exc
