"""SMART App Launch against a respx EHR: EHR and standalone launch, PKCE S256, state bound to
the browser session, single use and expiring, the code exchange, refresh-token rotation, and a
clear problem for every failure."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select, update

from service.db.session import Database
from service.ehr.deps import get_url_policy
from service.smart.models import LaunchGrant, LaunchState
from tests.connections.conftest import (
    CAPABILITY_STATEMENT,
    SMART_CONFIGURATION,
    TOKEN_URL,
    registration,
)
from tests.ehr.fakes import BASE, public_dns_policy

AUTHORIZE_URL = "https://auth.example.com/authorize"
JWKS_URI = "https://auth.example.com/jwks"
ISSUER = "https://auth.example.com"
CLIENT_ID = "casebridge-client"
LAUNCH_SCOPES = ["openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access"]


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class TokenEndpoint:
    """Hands out at-N / rt-N and records every form it receives."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.extra: dict[str, Any] = {
            "patient": "p-123",
            "encounter": "e-456",
            "need_patient_banner": True,
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(_form(request))
        n = len(self.forms)
        return httpx.Response(
            200,
            json={
                "access_token": f"at-{n}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": " ".join(LAUNCH_SCOPES),
                "refresh_token": f"rt-{n}",
            }
            | self.extra,
        )


@pytest.fixture(scope="module")
def ehr_key() -> RSAKey:
    return RSAKey.generate_key(2048, private=True, parameters={"kid": "ehr-1"})


@pytest.fixture
def token_endpoint() -> TokenEndpoint:
    return TokenEndpoint()


@pytest.fixture
def ehr(app: FastAPI, token_endpoint: TokenEndpoint, ehr_key: RSAKey) -> Iterator[respx.MockRouter]:
    app.dependency_overrides[get_url_policy] = public_dns_policy
    smart = SMART_CONFIGURATION | {"jwks_uri": JWKS_URI, "issuer": ISSUER}
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/metadata").respond(json=CAPABILITY_STATEMENT)
        router.get(f"{BASE}/.well-known/smart-configuration").respond(json=smart)
        router.post(TOKEN_URL).mock(side_effect=token_endpoint)
        router.get(JWKS_URI).respond(json={"keys": [ehr_key.as_dict(private=False)]})
        yield router
    app.dependency_overrides.pop(get_url_policy, None)


@pytest.fixture
async def connection(client: httpx.AsyncClient, ehr: respx.MockRouter) -> dict[str, Any]:
    response = await client.post(
        "/api/admin/connections",
        json=registration(auth_mode="app-launch", scopes=LAUNCH_SCOPES),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: no API key, keeps cookies, does not follow the redirect to the EHR."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


async def _ehr_launch(browser: httpx.AsyncClient, launch: str = "ctx-1") -> dict[str, str]:
    response = await browser.get("/smart/launch", params={"iss": BASE, "launch": launch})
    assert response.status_code == 302, response.text
    return _query(response.headers["Location"])


def _problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + kind)
    return body


async def test_ehr_launch_redirects_to_the_ehr_with_pkce_s256(
    browser: httpx.AsyncClient, connection: dict[str, Any]
) -> None:
    response = await browser.get("/smart/launch", params={"iss": BASE + "/", "launch": "ctx-1"})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(AUTHORIZE_URL + "?")
    query = _query(location)
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://testserver/smart/callback"
    assert query["aud"] == BASE
    assert query["launch"] == "ctx-1"
    assert query["scope"].split() == [*LAUNCH_SCOPES, "launch"]
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256, unpadded
    assert len(query["state"]) >= 43
    cookie = response.headers["set-cookie"]
    assert "casebridge_smart_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/smart" in cookie


async def test_the_callback_exchanges_the_code_and_stores_the_context(
    browser: httpx.AsyncClient,
    connection: dict[str, Any],
    token_endpoint: TokenEndpoint,
    database: Database,
) -> None:
    query = await _ehr_launch(browser)
    response = await browser.get(
        "/smart/callback", params={"code": "code-1", "state": query["state"]}
    )
    assert response.status_code == 200, response.text
    grant = response.json()
    assert (grant["patient"], grant["encounter"]) == ("p-123", "e-456")
    assert grant["connection_id"] == connection["id"]
    assert "at-1" not in response.text
    assert "rt-1" not in response.text

    [form] = token_endpoint.forms
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "code-1"
    assert form["redirect_uri"] == "http://testserver/smart/callback"
    digest = hashlib.sha256(form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    # A confidential asymmetric client: it authenticates with its connection key.
    assert form["client_assertion_type"].endswith("jwt-bearer")

    async with database.transaction(write=False) as session:
        row = await session.scalar(select(LaunchGrant))
    assert row is not None
    assert b"at-1" not in row.encrypted_access_token
    assert row.encrypted_refresh_token is not None
    assert b"rt-1" not in row.encrypted_refresh_token


async def test_fhir_user_comes_from_a_verified_id_token(
    browser: httpx.AsyncClient,
    connection: dict[str, Any],
    token_endpoint: TokenEndpoint,
    ehr_key: RSAKey,
) -> None:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "u1",
        "iat": now,
        "exp": now + 300,
        "fhirUser": "Practitioner/pr-9",
    }
    token_endpoint.extra["id_token"] = jwt.encode({"alg": "RS256", "kid": "ehr-1"}, claims, ehr_key)
    query = await _ehr_launch(browser)
    response = await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    assert response.status_code == 200, response.text
    assert response.json()["fhir_user"] == "Practitioner/pr-9"


async def test_an_id_token_with_a_bad_signature_is_refused(
    browser: httpx.AsyncClient, connection: dict[str, Any], token_endpoint: TokenEndpoint
) -> None:
    forger = RSAKey.generate_key(2048, private=True, parameters={"kid": "ehr-1"})
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "u", "exp": now + 300, "fhirUser": "x"}
    token_endpoint.extra["id_token"] = jwt.encode({"alg": "RS256", "kid": "ehr-1"}, claims, forger)
    query = await _ehr_launch(browser)
    response = await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    problem = _problem(response, 502, "ehr-protocol-error")
    assert "id_token" in problem["detail"]


async def test_a_replayed_state_is_refused(
    browser: httpx.AsyncClient, connection: dict[str, Any], token_endpoint: TokenEndpoint
) -> None:
    query = await _ehr_launch(browser)
    params = {"code": "code-1", "state": query["state"]}
    assert (await browser.get("/smart/callback", params=params)).status_code == 200
    replay = await browser.get("/smart/callback", params=params)
    assert _problem(replay, 400, "smart-state-rejected")["reason"] == "replayed"
    assert len(token_endpoint.forms) == 1


async def test_an_expired_state_is_refused(
    browser: httpx.AsyncClient,
    connection: dict[str, Any],
    token_endpoint: TokenEndpoint,
    database: Database,
) -> None:
    query = await _ehr_launch(browser)
    # Move the expiry into the past instead of waiting ten minutes.
    async with database.transaction() as session:
        await session.execute(
            update(LaunchState).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(1))
        )
    response = await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    assert _problem(response, 400, "smart-state-rejected")["reason"] == "expired"
    assert token_endpoint.forms == []


async def test_a_state_from_another_browser_session_is_refused_and_not_burned(
    app: FastAPI,
    browser: httpx.AsyncClient,
    connection: dict[str, Any],
    token_endpoint: TokenEndpoint,
) -> None:
    query = await _ehr_launch(browser)
    params = {"code": "c", "state": query["state"]}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as other_browser:
        stolen = await other_browser.get("/smart/callback", params=params)
        assert _problem(stolen, 400, "smart-state-rejected")["reason"] == "wrong-session"
        await _ehr_launch(other_browser)  # a session of its own does not help either
        stolen = await other_browser.get("/smart/callback", params=params)
        assert _problem(stolen, 400, "smart-state-rejected")["reason"] == "wrong-session"
    assert token_endpoint.forms == []
    assert (await browser.get("/smart/callback", params=params)).status_code == 200


@pytest.mark.parametrize(
    ("params", "reason"),
    [({"code": "c"}, "missing"), ({"code": "c", "state": "made-up"}, "unknown")],
)
async def test_a_missing_or_unknown_state_is_refused(
    browser: httpx.AsyncClient,
    connection: dict[str, Any],
    params: dict[str, str],
    reason: str,
) -> None:
    await _ehr_launch(browser)
    response = await browser.get("/smart/callback", params=params)
    assert _problem(response, 400, "smart-state-rejected")["reason"] == reason


async def test_an_unregistered_iss_is_never_followed(
    browser: httpx.AsyncClient, connection: dict[str, Any], ehr: respx.MockRouter
) -> None:
    calls_before = ehr.calls.call_count
    evil = "https://evil.example.net/fhir"
    with respx.mock(assert_all_called=False) as elsewhere:
        evil_route = elsewhere.route(host="evil.example.net").respond(200)
        response = await browser.get("/smart/launch", params={"iss": evil, "launch": "x"})
    problem = _problem(response, 400, "smart-unregistered-iss")
    assert problem["iss"] == evil
    assert "Location" not in response.headers
    assert evil_route.call_count == 0
    assert ehr.calls.call_count == calls_before


async def test_a_backend_services_connection_does_not_accept_launches(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = await client.post("/api/admin/connections", json=registration())
    assert created.status_code == 201
    response = await browser.get("/smart/launch", params={"iss": BASE, "launch": "x"})
    _problem(response, 400, "smart-unregistered-iss")
    standalone = await browser.get(f"/smart/connections/{created.json()['id']}/launch")
    _problem(standalone, 404, "not-found")


async def test_the_ehr_refusing_authorization_gets_a_clear_problem(
    browser: httpx.AsyncClient, connection: dict[str, Any], token_endpoint: TokenEndpoint
) -> None:
    query = await _ehr_launch(browser)
    params = {
        "error": "access_denied",
        "error_description": "The user said no",
        "state": query["state"],
    }
    response = await browser.get("/smart/callback", params=params)
    problem = _problem(response, 400, "smart-authorization-refused")
    assert (problem["error"], problem["error_description"]) == ("access_denied", "The user said no")
    assert token_endpoint.forms == []
    again = await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    assert _problem(again, 400, "smart-state-rejected")["reason"] == "replayed"


async def test_a_refused_code_exchange_names_the_oauth_error(
    browser: httpx.AsyncClient, connection: dict[str, Any], ehr: respx.MockRouter
) -> None:
    ehr.post(TOKEN_URL).respond(
        400, json={"error": "invalid_grant", "error_description": "code expired"}
    )
    query = await _ehr_launch(browser)
    response = await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    problem = _problem(response, 502, "ehr-authorization-failed")
    assert problem["error"] == "invalid_grant"
    assert problem["error_description"] == "code expired"


async def test_standalone_launch_uses_the_connection_scopes(
    browser: httpx.AsyncClient, connection: dict[str, Any]
) -> None:
    response = await browser.get(f"/smart/connections/{connection['id']}/launch")
    assert response.status_code == 302
    query = _query(response.headers["Location"])
    assert query["scope"].split() == LAUNCH_SCOPES
    assert "launch" not in query
    assert query["aud"] == BASE
    callback = await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    assert callback.status_code == 200, callback.text


async def test_refresh_rotates_the_refresh_token(
    app: FastAPI,
    browser: httpx.AsyncClient,
    connection: dict[str, Any],
    token_endpoint: TokenEndpoint,
) -> None:
    query = await _ehr_launch(browser)
    grant = (
        await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    ).json()
    url = f"/smart/grants/{grant['id']}/refresh"
    first = await browser.post(url)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == grant["version"] + 1
    second = await browser.post(url)
    assert second.status_code == 200, second.text
    refreshes = token_endpoint.forms[1:]
    assert [f["grant_type"] for f in refreshes] == ["refresh_token", "refresh_token"]
    # Each refresh used the token the previous answer rotated in, never the old one again.
    assert [f["refresh_token"] for f in refreshes] == ["rt-1", "rt-2"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as stranger:
        _problem(await stranger.post(url), 404, "not-found")
        _problem(await stranger.get(f"/smart/grants/{grant['id']}"), 404, "not-found")
    read = await browser.get(f"/smart/grants/{grant['id']}")
    assert read.json()["patient"] == "p-123"


async def test_concurrent_refreshes_of_one_grant_each_use_the_latest_refresh_token(
    browser: httpx.AsyncClient, connection: dict[str, Any], token_endpoint: TokenEndpoint
) -> None:
    query = await _ehr_launch(browser)
    grant = (
        await browser.get("/smart/callback", params={"code": "c", "state": query["state"]})
    ).json()
    url = f"/smart/grants/{grant['id']}/refresh"
    first, second = await asyncio.gather(browser.post(url), browser.post(url))
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert sorted([first.json()["version"], second.json()["version"]]) == [
        grant["version"] + 1,
        grant["version"] + 2,
    ]
    assert [f["refresh_token"] for f in token_endpoint.forms[1:]] == ["rt-1", "rt-2"]


async def test_long_expired_states_are_purged_recent_ones_kept(
    browser: httpx.AsyncClient, connection: dict[str, Any], database: Database
) -> None:
    old = await _ehr_launch(browser, launch="old")
    recent = await _ehr_launch(browser, launch="recent")
    now = dt.datetime.now(dt.UTC)
    async with database.transaction() as session:
        await session.execute(
            update(LaunchState)
            .where(LaunchState.launch == "old")
            .values(expires_at=now - dt.timedelta(days=2))
        )
        await session.execute(
            update(LaunchState)
            .where(LaunchState.launch == "recent")
            .values(expires_at=now - dt.timedelta(minutes=1))
        )
    await _ehr_launch(browser, launch="third")  # starting a launch purges
    purged = await browser.get("/smart/callback", params={"code": "c", "state": old["state"]})
    assert _problem(purged, 400, "smart-state-rejected")["reason"] == "unknown"
    kept = await browser.get("/smart/callback", params={"code": "c", "state": recent["state"]})
    assert _problem(kept, 400, "smart-state-rejected")["reason"] == "expired"
