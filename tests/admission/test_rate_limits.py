"""Rate limits on /fhir and /auth/token: 429 with Retry-After and RateLimit fields after the
burst, refill on the limiter's clock, one bucket per client and per address, shared by every
process on the database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.admission import rate_limits, repository
from service.app import create_app
from service.settings import Settings
from tests.admission.conftest import FakeClock, FromAddress
from tests.api.case_factory import ok
from tests.fhir_auth.support import ES384_KEY, TOKEN_PATH, App, get_token, oauth_error, register

SEARCH = "/fhir/CarePlan"


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['access_token']}"}


def throttled(response: httpx.Response, policy: str, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(retry_after)
    assert response.headers["ratelimit"] == f"{policy};r=0;t={retry_after}"
    assert response.headers["ratelimit-policy"].startswith(f"{policy};q=")


def throttled_outcome(response: httpx.Response, policy: str, retry_after: int) -> None:
    throttled(response, policy, retry_after)
    assert response.headers["content-type"] == "application/fhir+json"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "throttled"


async def test_fhir_without_a_token_is_limited_per_address_and_refills(
    clock: FakeClock, from_address: FromAddress
) -> None:
    async with from_address("10.0.0.1") as first, from_address("10.0.0.2") as second:
        for _ in range(3):  # the burst
            assert (await first.get(SEARCH)).status_code == 401
        refused = await first.get(SEARCH)
        # 0.5 tokens a second: the next one in 2 s; a full bucket of 3 in 6 s.
        throttled_outcome(refused, "fhir-address", 2)
        assert refused.headers["ratelimit-policy"] == "fhir-address;q=3;w=6"
        assert (await second.get(SEARCH)).status_code == 401  # another address, its own bucket

        clock.now += 1.0
        throttled_outcome(await first.get(SEARCH), "fhir-address", 1)
        clock.now += 1.0
        assert (await first.get(SEARCH)).status_code == 401  # one token came back
        throttled_outcome(await first.get(SEARCH), "fhir-address", 2)


async def test_fhir_with_a_verified_token_is_limited_per_client(
    client: httpx.AsyncClient, clock: FakeClock, from_address: FromAddress
) -> None:
    await register(client, "app-a")
    await register(client, "app-b")
    async with from_address("10.1.0.1") as http:
        token_a = await get_token(http, App("app-a", ES384_KEY, "ES384"))
        token_b = await get_token(http, App("app-b", ES384_KEY, "ES384"))
    async with from_address("10.2.0.1") as http:
        # A token's first use counts against the address (its signature is not checked yet).
        ok(await http.get(SEARCH, headers=bearer(token_a)))
        for _ in range(3):  # then app-a's own burst
            ok(await http.get(SEARCH, headers=bearer(token_a)))
        throttled_outcome(await http.get(SEARCH, headers=bearer(token_a)), "fhir-client", 1)
        # app-b, from the same address, is not held back by app-a's bucket.
        for _ in range(4):
            ok(await http.get(SEARCH, headers=bearer(token_b)))
        throttled_outcome(await http.get(SEARCH, headers=bearer(token_b)), "fhir-client", 1)

        clock.now += 0.5  # 2 tokens a second
        ok(await http.get(SEARCH, headers=bearer(token_a)))
        throttled_outcome(await http.get(SEARCH, headers=bearer(token_a)), "fhir-client", 1)


async def test_token_requests_are_limited_per_client_and_per_address(
    client: httpx.AsyncClient, clock: FakeClock, from_address: FromAddress
) -> None:
    for client_id in ("app-a", "app-b", "app-c"):
        await register(client, client_id)
    async with from_address("10.3.0.1") as http:
        app_a = App("app-a", ES384_KEY, "ES384")
        ok(await http.post(TOKEN_PATH, data=app_a.form()))
        ok(await http.post(TOKEN_PATH, data=app_a.form()))
        refused = await http.post(TOKEN_PATH, data=app_a.form())
        assert "token-client" in oauth_error(refused, 429, "temporarily_unavailable")
        throttled(refused, "token-client", 1)

        ok(await http.post(TOKEN_PATH, data=App("app-b", ES384_KEY, "ES384").form()))
        # The address has spent its burst of 4: app-c is refused before its own bucket.
        app_c = App("app-c", ES384_KEY, "ES384")
        refused = await http.post(TOKEN_PATH, data=app_c.form())
        assert "token-address" in oauth_error(refused, 429, "temporarily_unavailable")
        throttled(refused, "token-address", 1)

    async with from_address("10.3.0.2") as other:  # app-a from elsewhere: its bucket is empty
        oauth_error(await other.post(TOKEN_PATH, data=app_a.form()), 429, "temporarily_unavailable")

    async with from_address("10.3.0.1") as http:
        clock.now += 1.0
        ok(await http.post(TOKEN_PATH, data=app_c.form()))


async def test_processes_on_one_database_share_the_buckets(
    settings: Settings, app: FastAPI, clock: FakeClock, from_address: FromAddress
) -> None:
    other = create_app(settings)  # a second replica: its own limiter, the same database
    async with other.router.lifespan_context(other):
        other.state.rate_limiter.clock = clock
        transport = httpx.ASGITransport(app=other, client=("10.4.0.1", 40000))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as there,
            from_address("10.4.0.1") as here,
        ):
            assert (await here.get(SEARCH)).status_code == 401
            assert (await there.get(SEARCH)).status_code == 401
            assert (await here.get(SEARCH)).status_code == 401
            throttled_outcome(await there.get(SEARCH), "fhir-address", 2)


async def test_a_lease_spares_the_database_and_a_refusal_is_remembered(
    app: FastAPI,
    clock: FakeClock,
    from_address: FromAddress,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter = app.state.rate_limiter
    limiter.fhir_address = rate_limits.Policy("fhir-address", 1.0, 100)  # leases of 5
    takes: list[str] = []
    real_take = repository.take

    async def counted_take(*args: Any, **kwargs: Any) -> repository.Take:
        takes.append(args[1])
        return await real_take(*args, **kwargs)

    monkeypatch.setattr(repository, "take", counted_take)
    async with from_address("10.5.0.1") as http:
        statuses = [(await http.get(SEARCH)).status_code for _ in range(110)]
    assert statuses == [401] * 100 + [429] * 10
    # 20 leases of 5, then one take that found the bucket empty; later refusals are local.
    assert len(takes) == 21


async def test_no_limits_when_disabled(app: FastAPI, from_address: FromAddress) -> None:
    app.state.rate_limiter.enabled = False
    async with from_address("10.6.0.1") as http:
        assert {(await http.get(SEARCH)).status_code for _ in range(10)} == {401}
