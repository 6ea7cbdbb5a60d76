"""Rate limits on `/auth/token` and `/fhir`: token buckets shared by every process and replica.

Policies (rates and bursts in the settings):

- `/auth/token`: per source address, and per client_id as the request names it (the
  assertion's `iss`, else the `client_id` parameter). That name is not verified when the
  bucket is charged and is used for nothing else: anyone who knows a client_id can spend its
  bucket, at the pace their own address bucket allows.
- `/fhir`: per client for requests whose bearer token this process has already verified
  (its signature checked, so its `client_id` is known); every other request, the first with a
  new token, an external issuer's token, or none, counts against its source address.

Why the database and not Redis: every replica already shares it, so the limits hold across
replicas with no new infrastructure, on SQLite and PostgreSQL alike; Redis would be one more
service to run, secure and fall back from. A take is one atomic `UPDATE ... RETURNING`
(`repository.take`). To keep that off most requests, a process takes a *lease* of up to
`MAX_LEASE` tokens at once (a twentieth of the burst) and spends it locally for up to
`LEASE_SECONDS`; a refusal is remembered locally until the bucket can hold a token again, so
a flood of refused requests costs no writes. What leasing gives up: a replica may hold a few
tokens another replica could have used, and unspent leased tokens are dropped (stricter,
never looser, than one shared bucket). Measured cost: see docs/admission.md.

The source address is the ASGI `client`: behind a proxy, uvicorn puts the `X-Forwarded-For`
address there only for proxies listed in `--forwarded-allow-ips` (`FORWARDED_ALLOW_IPS`).

A 429 carries `Retry-After` and the `RateLimit-Policy` and `RateLimit` fields of
draft-ietf-httpapi-ratelimit-headers (policy items `name;q=<burst>;w=<seconds to refill>`,
`name;r=0;t=<seconds>`). If the database fails, requests are admitted (and it is logged):
the in-flight bound still protects the process, and a limiter must not take the API down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from service.admission import repository
from service.api.problems import problem_response
from service.db.session import Database, DatabaseDep
from service.fhir_api.outcomes import is_fhir_path
from service.fhir_auth.oauth_errors import OAuthError
from service.fhir_auth.unverified import peek
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_LEASE = 20
LEASE_SECONDS = 1.0
PURGE_INTERVAL_SECONDS = 300.0
ERROR_LOG_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Policy:
    name: str  # an sf-token: the policy's name in the headers and its buckets' key prefix
    rate: float  # tokens per second
    burst: int

    @property
    def lease(self) -> int:
        return max(1, min(MAX_LEASE, self.burst // 20))

    @property
    def window_seconds(self) -> int:
        """Seconds an empty bucket takes to fill: the `w` of RateLimit-Policy."""
        return max(1, math.ceil(self.burst / self.rate))


@dataclass(frozen=True)
class Refusal:
    policy: Policy
    retry_after: int  # whole seconds, at least 1

    def headers(self) -> dict[str, str]:
        name, seconds = self.policy.name, str(self.retry_after)
        return {
            "Retry-After": seconds,
            "RateLimit-Policy": f"{name};q={self.policy.burst};w={self.policy.window_seconds}",
            "RateLimit": f"{name};r=0;t={seconds}",
        }


@dataclass
class _Lease:
    tokens: int
    until: float


@dataclass
class RateLimiter:
    """The policies, and what this process holds of their buckets (leases, refusals)."""

    enabled: bool
    token_client: Policy
    token_address: Policy
    fhir_client: Policy
    fhir_address: Policy
    clock: Callable[[], float] = time.time  # epoch seconds: buckets are shared across hosts
    _leases: dict[str, _Lease] = field(default_factory=dict)
    _refused_until: dict[str, float] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _next_purge: float = 0.0
    _next_error_log: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        s = settings
        return cls(
            enabled=s.rate_limits_enabled,
            token_client=Policy(
                "token-client",
                s.rate_limit_token_client_per_second,
                s.rate_limit_token_client_burst,
            ),
            token_address=Policy(
                "token-address",
                s.rate_limit_token_address_per_second,
                s.rate_limit_token_address_burst,
            ),
            fhir_client=Policy(
                "fhir-client", s.rate_limit_fhir_client_per_second, s.rate_limit_fhir_client_burst
            ),
            fhir_address=Policy(
                "fhir-address",
                s.rate_limit_fhir_address_per_second,
                s.rate_limit_fhir_address_burst,
            ),
        )

    async def check(self, database: Database, policy: Policy, subject: str) -> Refusal | None:
        """Spend one token of `subject`'s bucket under `policy`; a Refusal if there is none."""
        key = f"{policy.name}:{subject}"[:200]
        now = self.clock()
        refused_until = self._refused_until.get(key)
        if refused_until is not None and now < refused_until:
            return Refusal(policy, max(1, math.ceil(refused_until - now)))
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:  # requests of one key wait for one lease, not one take each
            now = self.clock()
            lease = self._leases.get(key)
            if lease is not None and lease.tokens > 0 and now < lease.until:
                lease.tokens -= 1
                return None
            try:
                taken = await self._take(database, key, policy, now)
            except (SQLAlchemyError, OSError) as exc:
                self._log_failure(now, exc)
                return None
            if taken.granted == 0:
                wait = (1.0 - taken.tokens) / policy.rate
                self._refused_until[key] = now + wait
                return Refusal(policy, max(1, math.ceil(wait)))
            self._leases[key] = _Lease(taken.granted - 1, now + LEASE_SECONDS)
            self._refused_until.pop(key, None)
        if now >= self._next_purge:
            await self._purge(database, now)
        return None

    async def _take(
        self, database: Database, key: str, policy: Policy, now: float
    ) -> repository.Take:
        async with database.connection() as connection:
            return await repository.take(
                connection, key, now, policy.rate, policy.burst, policy.lease
            )

    async def _purge(self, database: Database, now: float) -> None:
        """Forget what has refilled: stale buckets in the database, stale local state."""
        self._next_purge = now + PURGE_INTERVAL_SECONDS
        policies = (self.token_client, self.token_address, self.fhir_client, self.fhir_address)
        full_after = max(p.window_seconds for p in policies)
        try:
            async with database.connection() as connection:
                await repository.purge_full_buckets(connection, now - full_after)
        except (SQLAlchemyError, OSError) as exc:
            self._log_failure(now, exc)
        self._leases = {k: v for k, v in self._leases.items() if v.until > now}
        self._refused_until = {k: t for k, t in self._refused_until.items() if t > now}
        self._locks = {k: lock for k, lock in self._locks.items() if lock.locked()}

    def _log_failure(self, now: float, exc: BaseException) -> None:
        if now >= self._next_error_log:
            self._next_error_log = now + ERROR_LOG_INTERVAL_SECONDS
            log.warning("rate limits not enforced: the bucket store failed (%s)", exc)


def source_address(scope: Scope) -> str:
    """The caller's address as the server saw it (after uvicorn's trusted-proxy rewrite)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def verified_client(scope: Scope) -> str | None:
    """The client of a bearer token whose signature this process has verified; else None."""
    runtime = getattr(scope["app"].state, "fhir_auth", None)
    if runtime is None:
        return None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            claims = runtime.verified_tokens.get(token.strip())
            client_id = claims.get("client_id") if claims else None
            return client_id if isinstance(client_id, str) else None
    return None


class RateLimitMiddleware:
    """The /fhir limits, before authentication: an OperationOutcome 429 when refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_fhir_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        limiter: RateLimiter = state.rate_limiter
        if limiter.enabled:
            client_id = verified_client(scope)
            if client_id is not None:
                refusal = await limiter.check(state.database, limiter.fhir_client, client_id)
            else:
                address = source_address(scope)
                refusal = await limiter.check(state.database, limiter.fhir_address, address)
            if refusal is not None:
                response = problem_response(
                    429,
                    "rate-limited",
                    "Too many requests",
                    f"the {refusal.policy.name} rate limit is spent; retry after "
                    f"{refusal.retry_after} s",
                    scope["path"],
                )
                response.headers.update(refusal.headers())
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _claimed_client_id(body: bytes) -> str | None:
    """The client_id a token request names (unverified: only to choose a bucket)."""
    try:
        form = parse_qs(body.decode(), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    assertion = form.get("client_assertion", [None])[0]
    if assertion:
        try:
            _header, claims = peek(assertion)
        except ValueError:
            return None
        issuer = claims.get("iss")
        return issuer if isinstance(issuer, str) and issuer else None
    client_id = form.get("client_id", [None])[0]
    return client_id or None


async def limit_token_requests(request: Request, database: DatabaseDep) -> None:
    """The /auth/token limits: per source address, then per named client. A refusal is an
    RFC 6749 section 5.2 error body (`temporarily_unavailable`, the code section 4.1.2.1
    gives an overloaded server) with status 429."""
    limiter: RateLimiter = request.app.state.rate_limiter
    if not limiter.enabled:
        return
    refusal = await limiter.check(database, limiter.token_address, source_address(request.scope))
    if refusal is None:
        client_id = _claimed_client_id(await request.body())
        if client_id is not None:
            refusal = await limiter.check(database, limiter.token_client, client_id)
    if refusal is not None:
        raise OAuthError(
            "temporarily_unavailable",
            f"too many token requests ({refusal.policy.name}); retry after {refusal.retry_after} s",
            status=429,
            headers=refusal.headers(),
        )
