"""A latency-driven concurrency limit: how many requests one process should handle at once.

The limit follows the delay-based congestion control of TCP Vegas (Brakmo and Peterson,
IEEE JSAC 13(8), 1995) as Netflix's concurrency-limits library applies it to servers ("Performance
Under Load", Netflix Technology Blog, 2018; its `VegasLimit` and `Gradient2Limit`), and as
Envoy's adaptive concurrency filter does (a periodic re-measure of the no-load latency):

- **Baseline** (no-load latency): the minimum, over a window of `BASELINE_WINDOW_SECONDS` to
  twice that, of a smoothed mean of the latencies of requests that ran *alone* (none other in
  flight from their start to their end), which is what "no load" means for one event loop.
  The smoothing (a mean of the last several lone requests) makes a mix of cheap and costly
  requests give the mix's own baseline: the minimum of single requests would be the cheapest
  kind, and every ordinary one would then look overloaded. The window's minimum keeps the
  baseline from following an overload up: a lone request on an event loop busy refusing
  others is slow too. Once the window has passed, older figures are forgotten (the decay), so
  the baseline follows a database that got slower. If no request has run alone for
  `PROBE_INTERVAL_SECONDS` (a process under constant load), the limit drops to one until one
  has: a probe, as TCP BBR's ProbeRTT and Envoy's minRTT recalculation do.
- **Recent latency**: the mean over a *round*, the completions of about one limit's worth of
  requests (TCP's once-per-round-trip update), at least `MIN_ROUND` of them.
- **Update**, at the end of each round: above `tolerance` x the baseline (and if some of the
  round's requests overlapped: slow lone requests are not slowed by concurrency), the limit
  shrinks in proportion (`limit x tolerance x baseline / recent`, at most halved per round);
  at or under it, and if the round used the whole limit, the limit grows by one (additive
  increase; an idle process learns nothing about a higher limit, so it does not grow).
  Always within `minimum..maximum`.
- **Queue**: a request over the limit may wait, for at most a deadline derived from the
  baseline (`QUEUE_WAIT_BASELINES` x tolerance x baseline, and never more than the configured
  ceiling), so that a burst of a few parallel requests from one app waits a moment rather than
  failing. If the wait it can expect (its place in the queue over the limit, times the recent
  latency) is already past that deadline, it is refused at once (CoDel's lesson, RFC 8289: a
  queue that does not drain is only delay).

Pure arithmetic on an injected clock: the gate (`in_flight.InFlightGate`) tells it when
requests start and end; the tests drive it with synthetic latencies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

INITIAL_LIMIT = 8
MIN_ROUND = 4  # completions per round at least: one or two samples are noise
BASELINE_SMOOTHING = 0.2  # weight of a new lone request's latency in their mean
BASELINE_WINDOW_SECONDS = 30.0
PROBE_INTERVAL_SECONDS = 30.0
# A wait of one tolerated latency: with a longer allowance (4 before 2026-12-05), a queue
# that never drains under overload held the accepted p99 at 5-6x the unloaded one.
QUEUE_WAIT_BASELINES = 1.0
MAX_DECREASE = 0.5  # a round at most halves the limit


@dataclass(frozen=True)
class Started:
    """What the limit remembers of a request in flight."""

    at: float
    serial: int  # how many requests had started, this one included
    alone: bool  # no other request was in flight when it started


class AdaptiveLimit:
    def __init__(
        self,
        *,
        minimum: int,
        maximum: int,
        tolerance: float,
        max_wait_seconds: float,
        adaptive: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum ({minimum}) <= maximum ({maximum})")
        self.minimum = minimum
        self.maximum = maximum
        self.tolerance = tolerance
        self.max_wait_seconds = max_wait_seconds
        self.adaptive = adaptive
        self.clock = clock
        self.value = float(min(maximum, max(minimum, INITIAL_LIMIT)) if adaptive else maximum)
        self.lone: float | None = None  # the smoothed latency of lone requests
        self._window: list[float | None] = [None, None]  # its minimum: this window, the last
        self._window_started = clock()
        self.recent: float | None = None
        self.in_flight = 0
        self._serial = 0  # requests started
        self._last_alone = clock()
        self._probing = False
        self._round: list[float] = []
        self._round_peak = 0
        self._round_shared = False  # a request of this round overlapped another

    @property
    def baseline(self) -> float | None:
        """The no-load latency: the least smoothed lone latency of this window and the last."""
        known = [value for value in self._window if value is not None]
        return min(known) if known else None

    @property
    def limit(self) -> int:
        """Requests that may be in flight now (one while a probe waits for a lone request)."""
        return 1 if self._probing else int(self.value)

    def queue_deadline(self) -> float:
        """The longest a request over the limit may wait for a slot, in seconds."""
        if not self.adaptive or self.baseline is None:
            return self.max_wait_seconds
        return min(self.max_wait_seconds, QUEUE_WAIT_BASELINES * self.tolerance * self.baseline)

    def expected_wait(self, place: int) -> float:
        """The wait a request at `place` (1: next) in the queue can expect; 0 when unknown."""
        latency = self.recent if self.recent is not None else self.baseline
        if not self.adaptive or latency is None:
            return 0.0
        return math.ceil(place / self.limit) * latency

    def start(self) -> Started:
        alone = self.in_flight == 0
        self.in_flight += 1
        self._serial += 1
        self._round_peak = max(self._round_peak, self.in_flight)
        return Started(self.clock(), self._serial, alone)

    def abandon(self, started: Started) -> None:
        """A slot given back unused (its request went away before it ran): no sample."""
        self.in_flight -= 1

    def finish(self, started: Started) -> None:
        now = self.clock()
        self.in_flight -= 1
        if not self.adaptive:
            return
        latency = now - started.at
        if started.alone and self._serial == started.serial:  # no other request overlapped it
            self._sample_alone(now, latency)
            self._last_alone = now
            self._probing = False
        else:
            self._round_shared = True
            if now - self._last_alone >= PROBE_INTERVAL_SECONDS:
                self._probing = True  # until a request runs alone
        self._round.append(latency)
        if len(self._round) >= max(MIN_ROUND, int(self.value)):
            self._end_round()

    def _sample_alone(self, now: float, latency: float) -> None:
        self.lone = (
            latency if self.lone is None else self.lone + BASELINE_SMOOTHING * (latency - self.lone)
        )
        if now - self._window_started >= BASELINE_WINDOW_SECONDS:
            self._window = [None, self._window[0]]
            self._window_started = now
        current = self._window[0]
        self._window[0] = self.lone if current is None else min(current, self.lone)

    def _end_round(self) -> None:
        recent = sum(self._round) / len(self._round)
        used = self._round_peak >= int(self.value)
        shared = self._round_shared
        self._round = []
        self._round_peak = self.in_flight
        self._round_shared = False
        self.recent = recent
        if self.baseline is None:
            return  # nothing to compare with yet: keep the limit
        allowed = self.tolerance * self.baseline
        # A round of lone requests was slow for another reason (a costly request, a busy
        # machine): less concurrency cannot help it.
        if recent > allowed and shared:
            self.value *= max(MAX_DECREASE, allowed / recent)
        elif used:
            self.value += 1
        self.value = min(float(self.maximum), max(float(self.minimum), self.value))
