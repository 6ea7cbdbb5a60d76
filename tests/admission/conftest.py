"""An app with small rate limits on a clock the test moves, and clients from given addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY, settings_for

LIMITS = {
    "rate_limit_token_client_per_second": 1.0,
    "rate_limit_token_client_burst": 2,
    "rate_limit_token_address_per_second": 1.0,
    "rate_limit_token_address_burst": 4,
    "rate_limit_fhir_client_per_second": 2.0,
    "rate_limit_fhir_client_burst": 3,
    "rate_limit_fhir_address_per_second": 0.5,
    "rate_limit_fhir_address_burst": 3,
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url, **LIMITS)


@pytest.fixture
def clock(app: FastAPI) -> FakeClock:
    fake = FakeClock()
    app.state.rate_limiter.clock = fake
    return fake


FromAddress = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def from_address(app: FastAPI) -> FromAddress:
    """An anonymous client whose requests come from `address`."""

    @asynccontextmanager
    async def open_client(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http

    return open_client


__all__ = ["BOOTSTRAP_KEY", "FakeClock", "FromAddress"]
