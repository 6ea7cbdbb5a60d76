"""The circuit breaker per connection, through the FHIR client, with respx and a fake clock
(no real sleeps)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from service.ehr.circuit import BreakerState, CircuitBreaker, CircuitBreakers
from service.ehr.client import FhirClient, RetryPolicy
from service.ehr.errors import EhrCircuitOpen, EhrNotFound, EhrServerError, EhrTransientError
from tests.ehr.fakes import BASE, RecordedSleeps, public_dns_policy

GOAL: dict[str, Any] = {"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=5, cooldown_seconds=30.0, clock=clock)


def client_with(breaker: CircuitBreaker, sleeps: RecordedSleeps) -> FhirClient:
    return FhirClient(
        BASE,
        policy=public_dns_policy(),
        retry=RetryPolicy(max_retries=3, base_delay=0.01),
        sleep=sleeps,
        jitter=lambda: 1.0,
        breaker=breaker,
    )


def test_the_circuit_error_is_transient() -> None:
    # Pull and push catch EhrTransientError to reschedule: an open circuit must be one.
    assert issubclass(EhrCircuitOpen, EhrTransientError)


async def test_consecutive_failures_open_the_circuit_and_it_fails_fast(
    breaker: CircuitBreaker,
) -> None:
    sleeps = RecordedSleeps()
    async with client_with(breaker, sleeps) as client:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            route = ehr.get("/Goal/g1").respond(503)
            with pytest.raises(EhrServerError):
                await client.read("Goal", "g1")
            assert route.call_count == 4  # one try and three retries: 4 failures in a row
            with pytest.raises(EhrCircuitOpen) as caught:
                await client.read("Goal", "g1")
            assert route.call_count == 5  # the fifth failure opened it; no retry went out
            assert breaker.state is BreakerState.open
            assert caught.value.retry_after == 30.0
            with pytest.raises(EhrCircuitOpen):
                await client.read("Goal", "g1")
            assert route.call_count == 5


async def test_five_concurrent_reads_of_a_failing_ehr_send_five_requests(
    breaker: CircuitBreaker,
) -> None:
    """The observed storm: five pushes to an EHR answering 503 sent 80 requests."""
    sleeps = RecordedSleeps()
    async with client_with(breaker, sleeps) as client:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            route = ehr.get("/Goal/g1").respond(503)
            results = await asyncio.gather(
                *(client.read("Goal", "g1") for _ in range(5)), return_exceptions=True
            )
    assert all(isinstance(result, EhrTransientError) for result in results)
    assert sum(isinstance(result, EhrCircuitOpen) for result in results) >= 4
    assert route.call_count == 5  # without the breaker: 5 x (1 + 3 retries) = 20


async def test_after_the_cooldown_one_probe_goes_and_its_success_closes_the_circuit(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(5):
        breaker.record_failure()
    assert breaker.snapshot().state is BreakerState.open
    clock.now += 30.0
    assert breaker.snapshot().state is BreakerState.half_open
    sleeps = RecordedSleeps()
    release = asyncio.Event()
    async with client_with(breaker, sleeps) as client:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            sent = asyncio.Event()

            async def slow_answer(request: httpx.Request) -> httpx.Response:
                sent.set()
                await release.wait()
                return httpx.Response(200, json=GOAL)

            route = ehr.get("/Goal/g1").mock(side_effect=slow_answer)
            probe = asyncio.create_task(client.read("Goal", "g1"))
            await asyncio.wait_for(sent.wait(), 10)  # a limit against a hang only
            with pytest.raises(EhrCircuitOpen):  # only one probe at a time
                await client.read("Goal", "g1")
            release.set()
            assert (await probe)["id"] == "g1"
            assert breaker.state is BreakerState.closed
            assert (await client.read("Goal", "g1"))["id"] == "g1"
    assert route.call_count == 2


async def test_a_failed_probe_opens_the_circuit_for_another_cooldown(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30.0
    sleeps = RecordedSleeps()
    async with client_with(breaker, sleeps) as client:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            route = ehr.get("/Goal/g1").respond(500)
            with pytest.raises(EhrCircuitOpen):
                await client.read("Goal", "g1")
            assert route.call_count == 1  # the probe, then no retry
            assert breaker.state is BreakerState.open
            clock.now += 29.0
            with pytest.raises(EhrCircuitOpen):
                await client.read("Goal", "g1")
            assert route.call_count == 1


async def test_a_lost_probe_does_not_hold_the_circuit_half_open_for_good(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30.0
    assert breaker.before_request(BASE) is True  # a probe whose task is then cancelled
    with pytest.raises(EhrCircuitOpen):
        breaker.before_request(BASE)
    clock.now += 30.0
    assert breaker.before_request(BASE) is True


async def test_a_rejection_shows_the_ehr_is_up_and_resets_the_count(
    breaker: CircuitBreaker,
) -> None:
    sleeps = RecordedSleeps()
    async with client_with(breaker, sleeps) as client:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            ehr.get("/Goal/g1").mock(
                side_effect=[httpx.Response(503)] * 4
                + [httpx.Response(404)]
                + [httpx.Response(503)] * 4
            )
            with pytest.raises(EhrServerError):
                await client.read("Goal", "g1")
            with pytest.raises(EhrNotFound):
                await client.read("Goal", "g1")
            with pytest.raises(EhrServerError):  # four failures again: still closed
                await client.read("Goal", "g1")
    assert breaker.state is BreakerState.closed


def test_the_registry_gives_one_breaker_per_connection_and_reports_states(
    clock: FakeClock,
) -> None:
    breakers = CircuitBreakers(failure_threshold=2, cooldown_seconds=10.0, clock=clock)
    first = breakers.for_connection("c1")
    assert breakers.for_connection("c1") is first
    first.record_failure()
    first.record_failure()
    breakers.for_connection("c2")
    states = breakers.states()
    assert states["c1"].state is BreakerState.open
    assert states["c2"].state is BreakerState.closed
    assert breakers.state_of("unknown") is BreakerState.closed
