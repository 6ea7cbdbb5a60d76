"""A per-process bound on in-flight requests: at most the limit handled at once (adaptive by
default, see `adaptive.AdaptiveLimit`), a few more waiting for a slot for a short while, every
other one answered `503` with `Retry-After` at once.

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
import contextlib
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

from service.admission.adaptive import AdaptiveLimit, Started
from service.api.problems import problem_response

# Probes, and metrics scrapes (an overloaded process is the one worth watching).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_SECONDS = 1


class InFlightGate:
    """The slots and the wait queue of one process (shared by the app's middleware stack).
    `limit` 0: no bound. `queue`: the most requests that may wait for a slot."""

    def __init__(
        self,
        *,
        limit: int,
        queue: int,
        max_wait_seconds: float,
        adaptive: bool = False,
        minimum: int = 1,
        tolerance: float = 2.0,
    ) -> None:
        self.queue = queue
        self.bounded = limit > 0
        self.control = AdaptiveLimit(
            minimum=min(max(1, minimum), max(1, limit)),
            maximum=max(1, limit),
            tolerance=tolerance,
            max_wait_seconds=max_wait_seconds,
            adaptive=adaptive,
        )
        self._waiters: deque[asyncio.Future[Started]] = deque()

    @property
    def limit(self) -> int:
        return self.control.limit

    @property
    def in_flight(self) -> int:
        return self.control.in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def max_wait_seconds(self) -> float:
        return self.control.max_wait_seconds

    @max_wait_seconds.setter
    def max_wait_seconds(self, seconds: float) -> None:
        self.control.max_wait_seconds = seconds

    async def enter(self) -> Started | None:
        """Take a slot, waiting in the queue if there is room; None: refuse the request."""
        control = self.control
        if control.in_flight < control.limit and not self._waiters:
            return control.start()
        deadline = control.queue_deadline()
        place = len(self._waiters) + 1
        if place > self.queue or deadline <= 0 or control.expected_wait(place) > deadline:
            return None
        granted: asyncio.Future[Started] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(granted), deadline)
        except BaseException:  # cancelled (the client went away): give back a granted slot
            self._give_up(granted)
            raise
        if granted.done():
            return granted.result()
        self._give_up(granted)
        return None

    def leave(self, started: Started) -> None:
        self.control.finish(started)
        self._admit_waiting()

    def _give_up(self, granted: asyncio.Future[Started]) -> None:
        if granted.done():  # granted just as the wait ended: pass the slot on
            self.control.abandon(granted.result())
            self._admit_waiting()
            return
        granted.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(granted)

    def _admit_waiting(self) -> None:
        control = self.control
        while self._waiters and control.in_flight < control.limit:
            granted = self._waiters.popleft()
            if not granted.done():
                granted.set_result(control.start())


class InFlightBound:
    def __init__(self, app: ASGIApp, *, gate: InFlightGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if not gate.bounded or scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        started = await gate.enter()
        if started is None:
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
            gate.leave(started)
