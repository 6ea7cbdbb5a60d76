"""Token introspection (RFC 7662) and the SMART configuration document."""

from __future__ import annotations

import time

import httpx
from joserfc import jwt

from tests.api.case_factory import ok
from tests.conftest import BOOTSTRAP_KEY
from tests.fhir_auth.support import (
    ASSERTION_TYPE,
    ES384_KEY,
    INTROSPECT_PATH,
    RS384_KEY,
    App,
    get_token,
    oauth_error,
    register,
)

APP = App("app-1", ES384_KEY, "ES384")
ADMIN = {"X-API-Key": BOOTSTRAP_KEY}


def as_client(app: App, token: str) -> dict[str, str]:
    return {
        "token": token,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": app.assertion(),
    }


async def _expired_copy(http: httpx.AsyncClient, token: str) -> str:
    app = http._transport.app  # type: ignore[attr-defined]
    key = await app.state.fhir_auth.keyring.signing_key(app.state.database)
    claims = jwt.decode(token, key.jwk, algorithms=[key.alg]).claims
    claims["exp"] = int(time.time()) - 120
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key.jwk, algorithms=[key.alg])


async def test_an_admin_introspects_active_expired_and_garbage_tokens(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    issued = await get_token(anonymous, APP, "system/CarePlan.rs system/Goal.r")
    token = issued["access_token"]
    response = await anonymous.post(INTROSPECT_PATH, data={"token": token}, headers=ADMIN)
    body = ok(response)
    assert response.headers["cache-control"] == "no-store"
    assert body["active"] is True
    assert body["scope"] == "system/CarePlan.rs system/Goal.r"
    assert body["client_id"] == body["sub"] == "app-1"
    assert body["exp"] > time.time()
    assert body["token_type"] == "bearer"
    assert "patient" not in body
    expired = await _expired_copy(anonymous, token)
    for dead in (expired, "garbage", token[:-4] + "AAAA", APP.assertion()):
        response = await anonymous.post(INTROSPECT_PATH, data={"token": dead}, headers=ADMIN)
        assert response.json() == {"active": False}, dead


async def test_a_client_introspects_only_its_own_tokens(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    await register(client, "app-2")
    mine = (await get_token(anonymous, APP))["access_token"]
    other_app = App("app-2", RS384_KEY, "RS384")
    theirs = (await get_token(anonymous, other_app))["access_token"]
    assert ok(await anonymous.post(INTROSPECT_PATH, data=as_client(APP, mine)))["active"] is True
    assert ok(await anonymous.post(INTROSPECT_PATH, data=as_client(APP, theirs))) == {
        "active": False
    }


async def test_a_disabled_clients_tokens_are_inactive(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    token = (await get_token(anonymous, APP))["access_token"]
    ok(
        await client.patch(
            "/api/admin/fhir-clients/app-1", json={"enabled": False}, headers={"If-Match": "*"}
        )
    )
    response = await anonymous.post(INTROSPECT_PATH, data={"token": token}, headers=ADMIN)
    assert ok(response) == {"active": False}


async def test_introspection_requires_a_caller(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    token = (await get_token(anonymous, APP))["access_token"]
    oauth_error(
        await anonymous.post(INTROSPECT_PATH, data={"token": token}), 400, "invalid_request"
    )
    oauth_error(
        await anonymous.post(
            INTROSPECT_PATH, data={"token": token}, headers={"X-API-Key": "wrong"}
        ),
        401,
        "invalid_client",
    )
    issued = ok(await client.post("/api/admin/api-keys", json={"name": "cm"}), 201)
    case_manager = {"X-API-Key": issued["key"]}
    response = await anonymous.post(INTROSPECT_PATH, data={"token": token}, headers=case_manager)
    assert "admin" in oauth_error(response, 401, "invalid_client")
    forged = App("app-1", RS384_KEY, "RS256")
    form = as_client(APP, token) | {"client_assertion": forged.assertion()}
    oauth_error(await anonymous.post(INTROSPECT_PATH, data=form), 401, "invalid_client")
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": APP.assertion()}
    assert "token" in oauth_error(
        await anonymous.post(INTROSPECT_PATH, data=form), 400, "invalid_request"
    )


async def test_smart_configuration(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/fhir/.well-known/smart-configuration")
    body = ok(response)
    assert body["token_endpoint"] == "http://testserver/auth/token"
    assert body["introspection_endpoint"] == "http://testserver/auth/introspect"
    assert body["grant_types_supported"] == ["client_credentials"]
    assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert body["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert body["capabilities"] == [
        "client-confidential-asymmetric",
        "permission-v2",
        "permission-v1",
    ]
    assert "system/CarePlan.rs" in body["scopes_supported"]
    assert "system/*.read" in body["scopes_supported"]
