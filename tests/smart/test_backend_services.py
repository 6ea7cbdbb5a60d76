"""Backend Services token client against a respx token endpoint: the assertion, the cache, the
refresh ahead of expiry, one request for many callers, the 401 retry, and the failures."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from service.ehr.client import FhirClient
from service.ehr.errors import (
    EhrAuthorizationError,
    EhrProtocolError,
    EhrServerError,
    EhrUnauthorized,
    EhrUrlRefused,
)
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesGrant, BackendServicesTokens
from service.smart.keys import ScheduledSigningKey, SigningAlgorithm, generate_key_pair
from tests.ehr.fakes import BASE, public_dns_policy

TOKEN_URL = "https://auth.example.com/token"
CLIENT_ID = "casebridge-client"
SCOPES = ("system/Patient.rs", "system/Goal.rs")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _box() -> SecretBox:
    return SecretBox(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


def make_grant(
    alg: SigningAlgorithm = "RS384", scopes: tuple[str, ...] = SCOPES, token_url: str = TOKEN_URL
) -> tuple[BackendServicesGrant, dict[str, Any]]:
    pair = generate_key_pair(alg, _box())
    grant = BackendServicesGrant(
        connection_id="conn-1",
        token_endpoint=token_url,
        client_id=CLIENT_ID,
        scopes=scopes,
        signing_keys=(ScheduledSigningKey(None, pair.signing_key),),
    )
    return grant, pair.public_jwk


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


class TokenEndpoint:
    """Issues tok-1, tok-2, ... and records the form of every request."""

    def __init__(self, expires_in: int = 300) -> None:
        self.forms: list[dict[str, str]] = []
        self.expires_in = expires_in

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        for _ in range(5):  # yield to the loop, as a real network round trip would
            await asyncio.sleep(0)
        self.forms.append(_form(request))
        return httpx.Response(
            200,
            json={
                "access_token": f"tok-{len(self.forms)}",
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "scope": self.forms[-1].get("scope", ""),
            },
        )


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    issued = TokenEndpoint()
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).mock(side_effect=issued)
        yield issued


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tokens(clock: FakeClock) -> BackendServicesTokens:
    return BackendServicesTokens(policy=public_dns_policy(), refresh_margin_seconds=60, clock=clock)


@pytest.mark.parametrize(("alg", "key_class"), [("RS384", RSAKey), ("ES384", ECKey)])
async def test_the_assertion_follows_the_smart_profile(
    alg: SigningAlgorithm,
    key_class: type[RSAKey] | type[ECKey],
    endpoint: TokenEndpoint,
    tokens: BackendServicesTokens,
) -> None:
    grant, public_jwk = make_grant(alg)
    assert await tokens.access_token(grant) == "tok-1"
    [form] = endpoint.forms
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == " ".join(SCOPES)
    assert form["client_assertion_type"] == ASSERTION_TYPE
    token = jwt.decode(form["client_assertion"], key_class.import_key(public_jwk), algorithms=[alg])
    assert token.header == {"alg": alg, "kid": grant.signing_key.kid, "typ": "JWT"}
    claims = token.claims
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert len(claims["jti"]) >= 16


async def test_every_assertion_has_a_new_jti(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    first = await tokens.access_token(grant)
    await tokens.reauthenticate(grant, first)
    await tokens.reauthenticate(grant, "tok-2")
    assertions = [form["client_assertion"] for form in endpoint.forms]
    assert len(assertions) == 3
    payloads = [_unverified_claims(a) for a in assertions]
    assert len({p["jti"] for p in payloads}) == 3


def _unverified_claims(assertion: str) -> dict[str, Any]:
    payload = assertion.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_tokens_are_cached_per_connection_and_scope_set(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    same_scopes_reordered = BackendServicesGrant(
        connection_id=grant.connection_id,
        token_endpoint=grant.token_endpoint,
        client_id=grant.client_id,
        scopes=tuple(reversed(SCOPES)),
        signing_keys=grant.signing_keys,
    )
    fewer_scopes = BackendServicesGrant(
        connection_id=grant.connection_id,
        token_endpoint=grant.token_endpoint,
        client_id=grant.client_id,
        scopes=SCOPES[:1],
        signing_keys=grant.signing_keys,
    )
    assert await tokens.access_token(grant) == "tok-1"
    assert await tokens.access_token(grant) == "tok-1"
    assert await tokens.access_token(same_scopes_reordered) == "tok-1"
    assert await tokens.access_token(fewer_scopes) == "tok-2"
    assert len(endpoint.forms) == 2
    assert endpoint.forms[1]["scope"] == SCOPES[0]


async def test_a_token_is_replaced_ahead_of_its_expiry(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens, clock: FakeClock
) -> None:
    grant, _ = make_grant()
    assert await tokens.access_token(grant) == "tok-1"  # expires at +300, margin 60
    clock.now += 239
    assert await tokens.access_token(grant) == "tok-1"
    clock.now += 2  # now inside the margin: 59 s left
    assert await tokens.access_token(grant) == "tok-2"
    assert len(endpoint.forms) == 2


async def test_a_hundred_concurrent_callers_cause_one_token_request(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    results = await asyncio.gather(*(tokens.access_token(grant) for _ in range(100)))
    assert set(results) == {"tok-1"}
    assert len(endpoint.forms) == 1


async def test_concurrent_reauthentications_of_one_rejected_token_fetch_once(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    rejected = await tokens.access_token(grant)
    results = await asyncio.gather(*(tokens.reauthenticate(grant, rejected) for _ in range(20)))
    assert set(results) == {"tok-2"}
    assert len(endpoint.forms) == 2


async def test_a_401_from_the_ehr_reauthenticates_once_and_retries(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    with respx.mock(assert_all_called=True) as ehr:
        patient = ehr.get(f"{BASE}/Patient/p1").mock(
            side_effect=[
                httpx.Response(401),
                httpx.Response(200, json={"resourceType": "Patient", "id": "p1"}),
            ]
        )
        async with FhirClient(
            BASE, policy=public_dns_policy(), token_provider=tokens.provider(grant)
        ) as client:
            assert (await client.read("Patient", "p1"))["id"] == "p1"
    sent = [call.request.headers["Authorization"] for call in patient.calls]
    assert sent == ["Bearer tok-1", "Bearer tok-2"]


async def test_a_second_401_is_not_retried_again(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    with respx.mock(assert_all_called=True) as ehr:
        patient = ehr.get(f"{BASE}/Patient/p1").respond(401)
        async with FhirClient(
            BASE, policy=public_dns_policy(), token_provider=tokens.provider(grant)
        ) as client:
            with pytest.raises(EhrUnauthorized):
                await client.read("Patient", "p1")
    assert patient.call_count == 2
    assert len(endpoint.forms) == 2


async def test_an_oauth_error_is_reported_with_its_code(tokens: BackendServicesTokens) -> None:
    grant, _ = make_grant()
    with respx.mock(assert_all_called=True) as router:
        router.post(TOKEN_URL).respond(
            401, json={"error": "invalid_client", "error_description": "unknown kid"}
        )
        with pytest.raises(EhrAuthorizationError) as raised:
            await tokens.access_token(grant)
    assert raised.value.error == "invalid_client"
    assert raised.value.error_description == "unknown kid"
    assert "invalid_client (unknown kid)" in raised.value.detail
    assert raised.value.extra["url"] == TOKEN_URL


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503, text="down"), EhrServerError),
        (httpx.Response(200, text="<html>login</html>"), EhrProtocolError),
        (httpx.Response(200, json={"token_type": "bearer"}), EhrProtocolError),
        (httpx.Response(200, json={"access_token": "x", "token_type": "mac"}), EhrProtocolError),
    ],
)
async def test_unusable_token_responses_are_typed_errors(
    response: httpx.Response, error: type[Exception], tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    with respx.mock(assert_all_called=True) as router:
        router.post(TOKEN_URL).mock(return_value=response)
        with pytest.raises(error):
            await tokens.access_token(grant)


async def test_the_token_endpoint_passes_the_ssrf_policy(tokens: BackendServicesTokens) -> None:
    grant, _ = make_grant(token_url="http://auth.example.com/token")
    with respx.mock(assert_all_called=False) as router:
        route = router.post("http://auth.example.com/token").respond(200)
        with pytest.raises(EhrUrlRefused):
            await tokens.access_token(grant)
    assert route.call_count == 0


async def test_forget_drops_only_that_connections_tokens(
    endpoint: TokenEndpoint, tokens: BackendServicesTokens
) -> None:
    grant, _ = make_grant()
    other = BackendServicesGrant(
        connection_id="conn-2",
        token_endpoint=grant.token_endpoint,
        client_id=grant.client_id,
        scopes=grant.scopes,
        signing_keys=grant.signing_keys,
    )
    assert await tokens.access_token(grant) == "tok-1"
    assert await tokens.access_token(other) == "tok-2"
    tokens.forget("conn-1")
    assert await tokens.access_token(other) == "tok-2"
    assert await tokens.access_token(grant) == "tok-3"
