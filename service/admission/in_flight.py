"""A per-process bound on in-flight requests: at most `limit` handled at once, at most `queue`
waiting for a slot (each for at most `max_wait_seconds`), every other one answered `503` with
`Retry-After` at once.

One event loop shares its CPU among the requests it handles, so past its capacity more
concurrency only makes every request slower, and an unbounded backlog makes latency grow
without limit. Refusing the excess early (a 503 costs a small fraction of a real request)
keeps the accepted requests near their unloaded latency; clients and load balancers retry
elsewhere or later (RFC 9110 section 15.6.4, `Retry-After` section 10.2.3). Health and
readiness probes (and `/metrics`) are exempt: an overloaded process is alive, and its
probes must say so.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.problems import problem_response

# Probes, and metrics scrapes (an overloaded process is the one worth watching).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_SECONDS = 1


class InFlightGate:
    """The slots and the wait queue of one process (shared by the app's middleware stack)."""

    def __init__(self, *, limit: int, queue: int, max_wait_seconds: float) -> None:
        self.limit = limit
        self.queue = queue
        self.max_wait_seconds = max_wait_seconds
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self.in_flight = 0
        self.waiting = 0

    @property
    def bounded(self) -> bool:
        return self._slots is not None

    async def enter(self) -> bool:
        """Take a slot, waiting in the queue if there is room; False: refuse the request."""
        assert self._slots is not None
        if self._slots.locked():  # no free slot, or others already wait for one
            if self.waiting >= self.queue or self.max_wait_seconds <= 0:
                return False
            self.waiting += 1
            try:
                async with asyncio.timeout(self.max_wait_seconds):
                    await self._slots.acquire()
            except TimeoutError:
                return False
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()  # a free slot: returns at once
        self.in_flight += 1
        return True

    def leave(self) -> None:
        assert self._slots is not None
        self.in_flight -= 1
        self._slots.release()


class InFlightBound:
    def __init__(self, app: ASGIApp, *, gate: InFlightGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if not gate.bounded or scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if not await gate.enter():
            response = problem_response(
                503,
                "overloaded",
                "Service overloaded",
                f"more than {gate.limit} requests in progress; retry after {RETRY_AFTER_SECONDS} s",
                scope["path"],
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.leave()
