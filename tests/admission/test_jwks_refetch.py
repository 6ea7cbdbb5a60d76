"""A `kid` nobody published cannot make us fetch a key set on every request: 200 tokens
naming one cause a bounded number of fetches (respx counts them), on every path that fetches
a JWKS because of an unknown `kid`. A rotation is still picked up once the interval passed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from service.auth.oidc import OidcVerifier
from service.ehr.deps import get_url_policy
from service.fhir_auth.client_keys import ClientKeyCache
from service.fhir_auth.runtime import EXTERNAL_ALGORITHMS
from service.settings import Settings
from tests.admission.conftest import FakeClock
from tests.api.case_factory import ok
from tests.conftest import settings_for
from tests.fhir_auth.conftest import public_dns_policy
from tests.fhir_auth.support import (
    ES384_KEY,
    JWKS_URL,
    TOKEN_PATH,
    App,
    jwks,
    oauth_error,
    register,
)

TOKENS = 200
FHIR_AUDIENCE = "http://testserver/fhir"
INTERVAL = 30.0
ISSUER = "https://idp.example.org/realms/smart"
ISSUER_JWKS_URL = ISSUER + "/protocol/openid-connect/certs"
KNOWN = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
ROTATED = RSAKey.generate_key(2048, parameters={"kid": "idp-2"})
UNPUBLISHED = ECKey.generate_key("P-384", parameters={"kid": "never-published"})


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        rate_limits_enabled=False,  # every request must reach the verifier
        fhir_external_issuer=ISSUER,
        fhir_external_jwks_url=ISSUER_JWKS_URL,
        oidc_issuer=ISSUER,
        oidc_jwks_url=ISSUER_JWKS_URL,
        oidc_audience="casebridge",
        jwks_refetch_interval_seconds=INTERVAL,
    )


@pytest.fixture
def idp() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.get(ISSUER_JWKS_URL).respond(json=jwks(KNOWN))


def issuer_token(key: RSAKey, audience: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": audience,
        "sub": "dr-who",
        "exp": now + 300,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "scope": "system/CarePlan.rs",
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def verifier_on(clock: FakeClock, audience: str) -> OidcVerifier:
    return OidcVerifier(
        ISSUER,
        ISSUER_JWKS_URL,
        audience,
        EXTERNAL_ALGORITHMS,
        refetch_interval_seconds=INTERVAL,
        clock=clock,
    )


async def test_fhir_bearer_tokens_with_an_unknown_kid(
    app: FastAPI, anonymous: httpx.AsyncClient, idp: respx.Route
) -> None:
    clock = FakeClock()
    app.state.fhir_auth.external = verifier_on(clock, FHIR_AUDIENCE)
    ok(await anonymous.get("/fhir/CarePlan", headers=bearer(issuer_token(KNOWN, FHIR_AUDIENCE))))
    assert idp.call_count == 1
    for _ in range(TOKENS):
        token = issuer_token(ROTATED, FHIR_AUDIENCE)
        assert (await anonymous.get("/fhir/CarePlan", headers=bearer(token))).status_code == 401
    assert idp.call_count == 1  # the keys were fetched within the interval: no refetch

    clock.now += INTERVAL
    for _ in range(TOKENS):
        token = issuer_token(ROTATED, FHIR_AUDIENCE)
        assert (await anonymous.get("/fhir/CarePlan", headers=bearer(token))).status_code == 401
    assert idp.call_count == 2  # one refetch for the unknown kid, then none within the interval

    idp.respond(json=jwks(KNOWN, ROTATED))  # the issuer rotates for real
    clock.now += INTERVAL
    ok(await anonymous.get("/fhir/CarePlan", headers=bearer(issuer_token(ROTATED, FHIR_AUDIENCE))))
    assert idp.call_count == 3


async def test_api_bearer_tokens_with_an_unknown_kid(
    app: FastAPI, anonymous: httpx.AsyncClient, idp: respx.Route
) -> None:
    clock = FakeClock()
    app.state.oidc_verifier = verifier_on(clock, "casebridge")
    for _ in range(TOKENS):
        token = issuer_token(ROTATED, "casebridge")
        assert (await anonymous.get("/api/patients", headers=bearer(token))).status_code == 401
    assert idp.call_count == 1  # the first load; the refetch waits for the interval
    clock.now += INTERVAL
    assert (await anonymous.get("/api/patients", headers=bearer(token))).status_code == 401
    assert idp.call_count == 2


async def test_client_assertions_with_an_unknown_kid(
    app: FastAPI, client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    app.dependency_overrides[get_url_policy] = public_dns_policy
    clock = FakeClock()
    runtime = app.state.fhir_auth
    runtime.client_keys = ClientKeyCache(
        runtime.http, refetch_interval_seconds=INTERVAL, clock=clock
    )
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(JWKS_URL).respond(json=jwks(ES384_KEY))
        await register(client, "url-app", jwks_url=JWKS_URL)
        for _ in range(TOKENS):
            form = App("url-app", UNPUBLISHED, "ES384").form()
            oauth_error(await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client")
        assert route.call_count == 1  # fetched once, for the first assertion
        clock.now += INTERVAL
        oauth_error(await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client")
        assert route.call_count == 2
