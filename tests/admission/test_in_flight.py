"""The per-process bound on in-flight requests: beyond the slots and the wait queue, 503 with
Retry-After at once; health and readiness always answer. A test-only endpoint holds its
requests on an event, so nothing depends on timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from service.admission.in_flight import InFlightGate
from service.app import create_app
from service.db.session import Database
from service.settings import Settings
from tests.conftest import settings_for

HOLD = "/test-only/hold"


class Holder:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url, max_in_flight=2, in_flight_queue=1, in_flight_max_wait_seconds=60
    )


@asynccontextmanager
async def holding_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, Holder]]:
    """The app with a test-only endpoint that holds each request until `release` is set."""
    app = create_app(settings)
    holder = Holder()

    async def hold() -> dict[str, str]:
        holder.entered += 1
        await holder.release.wait()
        return {"status": "released"}

    app.router.add_api_route(HOLD, hold, methods=["GET"])
    async with app.router.lifespan_context(app):
        yield app, holder


@pytest.fixture
async def held_app(settings: Settings, database: Database) -> AsyncIterator[tuple[FastAPI, Holder]]:
    async with holding_app(settings) as held:
        yield held


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):  # guards against a hang only
        while not check():
            await asyncio.sleep(0)


async def test_beyond_the_slots_and_the_queue_requests_get_503_and_health_answers(
    held_app: tuple[FastAPI, Holder],
) -> None:
    app, holder = held_app
    gate: InFlightGate = app.state.in_flight
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        holding = [asyncio.create_task(http.get(HOLD)) for _ in range(2)]
        await until(lambda: holder.entered == 2)
        queued = asyncio.create_task(http.get(HOLD))
        await until(lambda: gate.waiting == 1)

        refused = await http.get(HOLD)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/overloaded")
        fhir = await http.get("/fhir/CarePlan")  # /fhir refusals are OperationOutcomes
        assert fhir.status_code == 503
        assert fhir.json()["issue"][0]["code"] == "transient"

        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        assert holder.entered == 2
        assert gate.in_flight == 2

        holder.release.set()
        for response in await asyncio.gather(*holding, queued):
            assert response.status_code == 200
        assert holder.entered == 3  # the queued request ran once a slot was free
    assert gate.in_flight == 0
    assert gate.waiting == 0


async def test_a_request_that_waits_too_long_gets_503(
    held_app: tuple[FastAPI, Holder],
) -> None:
    app, holder = held_app
    gate: InFlightGate = app.state.in_flight
    gate.max_wait_seconds = 0.01  # the holders never finish within it: they wait for the event
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        holding = [asyncio.create_task(http.get(HOLD)) for _ in range(2)]
        await until(lambda: holder.entered == 2)
        timed_out = await http.get(HOLD)
        assert timed_out.status_code == 503
        assert gate.waiting == 0
        holder.release.set()
        await asyncio.gather(*holding)
        assert holder.entered == 2
        assert (await http.get(HOLD)).status_code == 200  # the slots are free again


async def test_no_bound_when_the_limit_is_zero(database_url: str, database: Database) -> None:
    async with holding_app(settings_for(database_url, max_in_flight=0)) as (app, holder):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            holding = [asyncio.create_task(http.get(HOLD)) for _ in range(6)]
            await until(lambda: holder.entered == 6)  # all at once, none refused or queued
            holder.release.set()
            for response in await asyncio.gather(*holding):
                assert response.status_code == 200
