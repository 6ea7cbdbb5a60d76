"""Bearer JWTs from the configured OIDC issuer: verified against its JWKS (served by respx),
strict on alg, iss, aud, exp and signature; the subject is recorded as the actor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from service.auth.oidc import OidcVerifier
from service.settings import Settings
from tests.api.case_factory import ok
from tests.conftest import settings_for

ISSUER = "https://idp.example.org/realms/care"
JWKS_URL = ISSUER + "/protocol/openid-connect/certs"
AUDIENCE = "casebridge"

SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url, oidc_issuer=ISSUER, oidc_jwks_url=JWKS_URL, oidc_audience=AUDIENCE
    )


@pytest.fixture
def jwks() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(JWKS_URL).respond(
            json={"keys": [SIGNING_KEY.as_dict(private=False) | {"alg": "RS256", "use": "sig"}]}
        )
        yield route


def token(key: Any = SIGNING_KEY, alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    claims |= overrides
    payload = {k: v for k, v in claims.items() if v}
    return jwt.encode({"alg": alg, "kid": "k1"}, payload, key, algorithms=[alg])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_a_valid_token_authenticates_and_is_the_recorded_actor(
    anonymous: httpx.AsyncClient, jwks: respx.Route
) -> None:
    headers = bearer(token())
    patient = ok(
        await anonymous.post(
            "/api/patients", json={"given_name": "A", "family_name": "B"}, headers=headers
        ),
        201,
    )
    case = ok(
        await anonymous.post(
            "/api/cases", json={"patient_id": patient["id"], "program": "nursing"}, headers=headers
        ),
        201,
    )
    history = ok(await anonymous.get(f"/api/cases/{case['id']}/history", headers=headers))
    assert history[0]["actor"] == "user:alice"
    # A plain user is not an admin; a token with the admin role is.
    assert (await anonymous.get("/api/admin/api-keys", headers=headers)).status_code == 403
    admin = bearer(token(roles=["admin"]))
    assert (await anonymous.get("/api/admin/api-keys", headers=admin)).status_code == 200
    assert jwks.call_count == 1  # the JWKS is cached


@pytest.mark.parametrize(
    "bad_token",
    [
        pytest.param(lambda: token(aud="someone-else"), id="wrong-aud"),
        pytest.param(lambda: token(iss="https://evil.example.org"), id="wrong-iss"),
        pytest.param(
            lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), id="expired"
        ),
        pytest.param(lambda: token(exp=None), id="no-exp"),
        pytest.param(lambda: token(key=OTHER_KEY), id="signed-by-another-key"),
        pytest.param(lambda: token(alg="RS512"), id="alg-not-allowed"),
        pytest.param(
            lambda: token(key=OctKey.import_key(b"k" * 32), alg="HS256"), id="hmac-confusion"
        ),
        pytest.param(lambda: token()[:-4] + "AAAA", id="tampered-signature"),
        pytest.param(lambda: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", id="alg-none"),
    ],
)
async def test_bad_tokens_are_refused(
    anonymous: httpx.AsyncClient, jwks: respx.Route, bad_token: Any
) -> None:
    response = await anonymous.get("/api/cases", headers=bearer(bad_token()))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval(
    app: FastAPI, anonymous: httpx.AsyncClient, jwks: respx.Route
) -> None:
    now_on = [1000.0]
    app.state.oidc_verifier = OidcVerifier(
        ISSUER, JWKS_URL, AUDIENCE, ("RS256",), refetch_interval_seconds=10, clock=lambda: now_on[0]
    )
    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "exp": now + 60}
    new_token = jwt.encode({"alg": "RS256", "kid": "k2"}, claims, rotated)
    assert (await anonymous.get("/api/cases", headers=bearer(token()))).status_code == 200
    assert jwks.call_count == 1
    response = await anonymous.get("/api/cases", headers=bearer(new_token))
    assert response.status_code == 401
    assert jwks.call_count == 1  # fetched moments ago: not again
    now_on[0] += 10
    assert (await anonymous.get("/api/cases", headers=bearer(new_token))).status_code == 401
    assert (await anonymous.get("/api/cases", headers=bearer(new_token))).status_code == 401
    assert jwks.call_count == 2  # one refresh per interval

    jwks.respond(json={"keys": [rotated.as_dict(private=False)]})
    now_on[0] += 10
    assert (await anonymous.get("/api/cases", headers=bearer(new_token))).status_code == 200
    assert jwks.call_count == 3


async def test_an_unreachable_jwks_is_503_not_401(anonymous: httpx.AsyncClient) -> None:
    with respx.mock() as mock:
        mock.get(JWKS_URL).mock(side_effect=httpx.ConnectError("refused"))
        response = await anonymous.get("/api/cases", headers=bearer(token()))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
