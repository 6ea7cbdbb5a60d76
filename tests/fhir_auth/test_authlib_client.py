"""Interoperability: authlib's OAuth client, with CaseBridge's own SMART Backend Services
assertion profile (the one our EHR connections use), gets a token from /auth/token."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from service.security.encryption import SecretBox
from service.smart.backend_services import ASSERTION_LIFETIME_SECONDS, SmartPrivateKeyJWT
from service.smart.keys import SigningAlgorithm, generate_key_pair
from service.smart.oauth_client import AsyncOAuth2Client
from tests.api.case_factory import ok
from tests.fhir_auth.support import TOKEN_URL


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_authlib_client_credentials_with_private_key_jwt(
    app: FastAPI, client: httpx.AsyncClient, alg: SigningAlgorithm
) -> None:
    box = SecretBox(app.state.settings.encryption_key.get_secret_value())
    pair = generate_key_pair(alg, box)
    body = {
        "client_id": "authlib-app",
        "name": "authlib",
        "scopes": ["system/*.rs"],
        "jwks": {"keys": [pair.public_jwk]},
    }
    ok(await client.post("/api/admin/fhir-clients", json=body), 201)
    async with AsyncOAuth2Client(
        client_id="authlib-app",
        token_endpoint_auth_method=SmartPrivateKeyJWT(pair.signing_key, ASSERTION_LIFETIME_SECONDS),
        scope="system/CarePlan.rs system/Goal.read",
        transport=httpx.ASGITransport(app=app),
    ) as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["token_type"] == "bearer"
        assert token["scope"] == "system/CarePlan.rs system/Goal.read"
        assert token["expires_in"] == 300
        introspected = await oauth.post(
            "http://testserver/auth/introspect",
            data={"token": token["access_token"]},
            headers={"X-API-Key": client.headers["X-API-Key"]},
        )
    assert ok(introspected)["active"] is True
