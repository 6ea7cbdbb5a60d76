"""The adaptive concurrency limit (service/admission/adaptive.py) on a clock the test moves and
synthetic latencies: no sleeps, no real timing. And the gate's queue that uses it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from service.admission.adaptive import (
    BASELINE_WINDOW_SECONDS,
    PROBE_INTERVAL_SECONDS,
    AdaptiveLimit,
    Started,
)
from service.admission.in_flight import InFlightGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, *, minimum: int = 1, maximum: int = 16) -> AdaptiveLimit:
    return AdaptiveLimit(
        minimum=minimum, maximum=maximum, tolerance=2.0, max_wait_seconds=60.0, clock=clock
    )


def alone(limit: AdaptiveLimit, clock: Clock, latency: float) -> None:
    """One request with nothing else in flight: a no-load sample."""
    started = limit.start()
    clock.now += latency
    limit.finish(started)


def together(limit: AdaptiveLimit, clock: Clock, count: int, latency: float) -> None:
    """`count` requests at once, each taking `latency`."""
    started = [limit.start() for _ in range(count)]
    clock.now += latency
    for each in started:
        limit.finish(each)


def full_rounds(limit: AdaptiveLimit, clock: Clock, latency: float, rounds: int) -> list[int]:
    """Rounds that use the whole limit; the limit after each."""
    seen = []
    for _ in range(rounds):
        together(limit, clock, max(4, limit.limit), latency)
        seen.append(limit.limit)
    return seen


def test_lone_requests_set_the_baseline_and_overlapping_ones_do_not() -> None:
    clock = Clock()
    limit = limiter(clock)
    together(limit, clock, 3, 0.5)
    assert limit.baseline is None  # none ran alone: no no-load sample yet
    alone(limit, clock, 0.010)
    assert limit.baseline == pytest.approx(0.010)
    # One that started alone but had company before it ended is not a no-load sample.
    first = limit.start()
    second = limit.start()
    clock.now += 1.0
    limit.finish(first)
    limit.finish(second)
    assert limit.baseline == pytest.approx(0.010)


def test_the_limit_falls_under_rising_latency_and_recovers_after() -> None:
    clock = Clock()
    limit = limiter(clock, minimum=2, maximum=16)
    for _ in range(5):
        alone(limit, clock, 0.010)
    assert limit.limit == 8  # the initial limit

    falling = full_rounds(limit, clock, 0.100, rounds=10)  # 10x the baseline, tolerance 2x
    assert falling == sorted(falling, reverse=True)
    assert falling[0] < 8
    assert falling[-1] == 2  # the floor, and never under it
    assert min(falling) == 2

    rising = full_rounds(limit, clock, 0.012, rounds=30)  # back under the tolerance
    assert rising == sorted(rising)
    steps = [after - before for before, after in zip([2, *rising[:-1]], rising, strict=True)]
    assert set(steps) <= {0, 1}  # additive: at most one per round
    assert rising[-1] == 16  # the ceiling, and never over it
    assert max(rising) == 16


def test_latency_within_the_tolerance_keeps_the_limit_and_an_idle_process_does_not_grow() -> None:
    clock = Clock()
    limit = limiter(clock)
    for _ in range(5):
        alone(limit, clock, 0.010)
    # Half the limit in use, at 1.5x the baseline: within tolerance, but the limit is not
    # the constraint, so nothing is learnt about a higher one.
    for _ in range(10):
        together(limit, clock, 4, 0.015)
    assert limit.limit == 8
    # At most halved per round, however bad the round: these 8 end two rounds (the first
    # begun by earlier requests), so 8 -> 4 -> 2.
    together(limit, clock, 8, 20.0)
    assert limit.limit == 2


def test_without_a_lone_request_for_a_while_the_limit_probes_at_one() -> None:
    clock = Clock()
    limit = limiter(clock)
    alone(limit, clock, 0.010)
    together(limit, clock, 4, 0.010)
    assert limit.limit == 8
    clock.now += PROBE_INTERVAL_SECONDS
    together(limit, clock, 4, 0.030)  # constant load: nothing runs alone
    assert limit.limit == 1  # the probe: the next request runs alone
    alone(limit, clock, 0.030)
    assert limit.limit > 1
    # A slow lone request (an event loop busy refusing others, or a slower database) does not
    # raise the baseline within its window...
    assert limit.baseline == pytest.approx(0.010)
    # ...but once the window has passed, it follows a database that got slower for good.
    for _ in range(40):
        clock.now += BASELINE_WINDOW_SECONDS / 15
        alone(limit, clock, 0.030)
    assert limit.baseline == pytest.approx(0.030, rel=0.05)


def test_the_queue_deadline_follows_the_baseline_within_the_ceiling() -> None:
    clock = Clock()
    limit = limiter(clock)
    assert limit.queue_deadline() == 60.0  # no baseline yet: the configured ceiling
    assert limit.expected_wait(3) == 0.0
    alone(limit, clock, 0.010)
    assert limit.queue_deadline() == pytest.approx(2.0 * 0.010)  # one tolerated latency
    limit.max_wait_seconds = 0.01
    assert limit.queue_deadline() == 0.01


def test_slow_requests_one_at_a_time_do_not_shrink_the_limit() -> None:
    clock = Clock()
    limit = limiter(clock)
    for _ in range(5):
        alone(limit, clock, 0.010)
    for _ in range(8):  # costly requests, one after another: no concurrency to blame
        alone(limit, clock, 0.200)
    assert limit.recent is not None
    assert limit.recent > 2 * 0.010
    assert limit.limit == 8


def test_a_fixed_bound_never_adapts() -> None:
    clock = Clock()
    limit = AdaptiveLimit(
        minimum=1, maximum=4, tolerance=2.0, max_wait_seconds=0.1, adaptive=False, clock=clock
    )
    alone(limit, clock, 0.010)
    for _ in range(5):
        together(limit, clock, 4, 10.0)
    assert limit.limit == 4
    assert limit.baseline is None
    assert limit.queue_deadline() == 0.1


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):  # guards against a hang only
        while not check():
            await asyncio.sleep(0)


def gate_after_overload(clock: Clock) -> InFlightGate:
    """A gate whose limit an overload drove down to one (baseline 1 s of synthetic time,
    tolerance 3: its queue deadline is 3 s)."""
    gate = InFlightGate(limit=16, queue=16, max_wait_seconds=60, adaptive=True, tolerance=3.0)
    gate.control.clock = clock
    alone(gate.control, clock, 1.0)
    full_rounds(gate.control, clock, 10.0, rounds=5)
    assert gate.limit == 1
    return gate


async def test_a_burst_of_five_from_one_app_waits_briefly_instead_of_503() -> None:
    """Once the process is quiet again and its limit has grown back to two, a burst of five
    parallel requests waits (at most two rounds, within the 3 s deadline): none is refused."""
    clock = Clock()
    gate = gate_after_overload(clock)
    alone(gate.control, clock, 1.0)  # a lone request ends the probe
    full_rounds(gate.control, clock, 1.0, rounds=2)  # rounds at the baseline, the limit used
    assert gate.limit == 2
    entering = [asyncio.create_task(gate.enter()) for _ in range(5)]
    await until(lambda: gate.in_flight == 2 and gate.waiting == 3)
    admitted = 0
    while entering:
        await until(lambda: any(task.done() for task in entering))
        for task in [task for task in entering if task.done()]:
            started = task.result()
            assert isinstance(started, Started)  # admitted, none refused
            entering.remove(task)
            admitted += 1
            clock.now += 1.0
            gate.leave(started)
    assert admitted == 5
    assert gate.in_flight == 0
    assert gate.waiting == 0


async def test_a_wait_past_the_deadline_is_refused_at_once_and_a_timed_out_waiter_leaves() -> None:
    clock = Clock()
    gate = gate_after_overload(clock)
    gate.control.recent = 2.0  # still slow: each place in the queue costs 2 s, deadline 3 s
    holder = await gate.enter()
    assert holder is not None
    first = asyncio.create_task(gate.enter())
    await until(lambda: gate.waiting == 1)
    assert await gate.enter() is None  # it would wait 4 s > 3 s: refused without waiting
    assert gate.waiting == 1

    gate.max_wait_seconds = 0.001  # now the waiter's deadline passes before the holder leaves
    late = await gate.enter()
    assert late is None
    assert gate.waiting == 1  # the first waiter still waits (its deadline was 3 s)
    assert holder is not None
    gate.leave(holder)
    started = await first
    assert started is not None
    assert gate.in_flight == 1
    gate.leave(started)
    assert gate.in_flight == 0
    assert gate.waiting == 0
