"""A circuit breaker per EHR connection, shared by every client of that connection in this
process (the push dispatcher's, the pull runner's, the API's).

Without it, each push or pull retries on its own: five pushes to an EHR answering 503 made 80
requests in 19 s. With it:

- **closed**: requests go through; `failure_threshold` transient failures in a row (a 5xx, a
  429, a timeout, a connection failure) open it.
- **open**: every request fails at once with `EhrCircuitOpen` (an `EhrTransientError`, so
  callers reschedule), for `cooldown_seconds`.
- **half-open**: after the cool-down, one request (the probe) goes through; the others still
  fail fast. Its success closes the circuit; its failure opens it for another cool-down.

An answer that is not transient (2xx, 3xx, a 4xx other than 429) shows the EHR is up and
closes the circuit. The state is this process's view; `breaker_states()` is what the sync
status and the metrics read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from service.ehr.errors import EhrCircuitOpen


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half-open"


@dataclass(frozen=True)
class BreakerSnapshot:
    """One breaker as it stands: for the sync status and the metrics."""

    state: BreakerState
    consecutive_failures: int
    # The breaker's clock (monotonic) when it last opened; None while closed.
    opened_at: float | None


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        # When the probe went out; a probe that never reported (its task was cancelled) stops
        # counting after a cool-down, so the circuit cannot stay half-open for good.
        self._probe_sent_at: float | None = None
        # Requests refused while open, ever: a caller compares it before and after its work to
        # tell whether the circuit held any of it back.
        self.held_back = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.closed
        if self._clock() - self._opened_at < self.cooldown_seconds:
            return BreakerState.open
        return BreakerState.half_open

    def seconds_until_probe(self) -> float:
        """How long the circuit still holds every request back: until the cool-down ends, or,
        with a probe out, until that probe would count as lost (0 when closed)."""
        if self._opened_at is None:
            return 0.0
        since = self._opened_at if self._probe_sent_at is None else self._probe_sent_at
        return max(0.0, since + self.cooldown_seconds - self._clock())

    def snapshot(self) -> BreakerSnapshot:
        return BreakerSnapshot(self.state, self._failures, self._opened_at)

    def before_request(self, url: str) -> bool:
        """Let a request through, or raise EhrCircuitOpen. True when it is the probe (the
        caller must then report its outcome, as every caller must)."""
        state = self.state
        if state is BreakerState.closed:
            return False
        assert self._opened_at is not None
        now = self._clock()
        probe_lost = (
            self._probe_sent_at is not None and now - self._probe_sent_at >= self.cooldown_seconds
        )
        if state is BreakerState.half_open and (self._probe_sent_at is None or probe_lost):
            # No await between the check and the mark: one probe at a time, under asyncio.
            self._probe_sent_at = now
            return True
        wait = max(0.0, self._opened_at + self.cooldown_seconds - self._clock())
        self.held_back += 1
        raise EhrCircuitOpen(
            "the EHR failed repeatedly; requests are held back until a probe succeeds",
            url=url,
            # A probe in flight: ask again after a cool-down rather than at once.
            retry_after=wait or self.cooldown_seconds,
        )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_sent_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            # A failed probe (or a failure of a request sent before the circuit opened) opens
            # it for a whole new cool-down.
            self._opened_at = self._clock()
        self._probe_sent_at = None


class CircuitBreakers:
    """The breakers of a process, one per connection, made on first use."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_connection(
        self,
        connection_id: str,
        *,
        failure_threshold: int | None = None,
        cooldown_seconds: float | None = None,
    ) -> CircuitBreaker:
        """The connection's breaker; the thresholds given (from the settings) apply to it."""
        breaker = self._breakers.get(connection_id)
        if breaker is None:
            breaker = CircuitBreaker(
                failure_threshold=self.failure_threshold,
                cooldown_seconds=self.cooldown_seconds,
                clock=self._clock,
            )
            self._breakers[connection_id] = breaker
        if failure_threshold is not None:
            breaker.failure_threshold = failure_threshold
        if cooldown_seconds is not None:
            breaker.cooldown_seconds = cooldown_seconds
        return breaker

    def forget(self, connection_id: str) -> None:
        """Drop a deleted connection's breaker."""
        self._breakers.pop(connection_id, None)

    def states(self) -> dict[str, BreakerSnapshot]:
        return {key: breaker.snapshot() for key, breaker in self._breakers.items()}

    def state_of(self, connection_id: str) -> BreakerState:
        breaker = self._breakers.get(connection_id)
        return BreakerState.closed if breaker is None else breaker.state


# The process-wide registry: every FhirClient made for a connection uses its breaker here.
process_breakers = CircuitBreakers()


def breaker_states() -> dict[str, BreakerSnapshot]:
    """Each connection's breaker in this process, by connection id (for metrics)."""
    return process_breakers.states()
