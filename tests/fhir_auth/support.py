"""Client-side helpers: an app's keys, its signed assertions, and registration bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.api.case_factory import ok

TOKEN_PATH = "/auth/token"
TOKEN_URL = "http://testserver/auth/token"
INTROSPECT_PATH = "/auth/introspect"
JWKS_URL = "https://app.example.org/.well-known/jwks.json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

RS384_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
ES384_KEY = ECKey.generate_key("P-384", parameters={"kid": "ec-1"})
ROTATED_KEY = ECKey.generate_key("P-384", parameters={"kid": "ec-2"})


def jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return {"keys": [dict(key.as_dict(private=False)) for key in keys]}


@dataclass(frozen=True)
class App:
    client_id: str
    key: RSAKey | ECKey
    alg: str

    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "iat": now,
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
        }
        claims |= overrides
        claims = {name: value for name, value in claims.items() if value is not None}
        header = {"alg": self.alg, "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def form(self, scope: str | None = "system/CarePlan.rs", **claims: Any) -> dict[str, str]:
        return token_form(self.assertion(**claims), scope)


def token_form(assertion: str, scope: str | None = "system/CarePlan.rs") -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    if scope is not None:
        form["scope"] = scope
    return form


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def unsigned_assertion(client_id: str, kid: str) -> str:
    """alg=none: a JWT with an empty signature, which no library should produce for us."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
    }
    return f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(claims)}."


def hmac_assertion(client_id: str, secret: bytes) -> str:
    """HS256 keyed with `secret`, built by hand: joserfc refuses to use public-key bytes as an
    HMAC key, which is the very confusion an attacker hopes the server makes."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
    }
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'rsa-1'})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


async def register(
    client: httpx.AsyncClient,
    client_id: str,
    scopes: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client_id,
        "name": f"App {client_id}",
        "scopes": scopes or ["system/CarePlan.rs", "system/Goal.cruds"],
    }
    if "jwks" not in fields and "jwks_url" not in fields:
        body["jwks"] = jwks(RS384_KEY, ES384_KEY)
    registered: dict[str, Any] = ok(
        await client.post("/api/admin/fhir-clients", json=body | fields), 201
    )
    return registered


async def get_token(
    http: httpx.AsyncClient, app: App, scope: str = "system/CarePlan.rs"
) -> dict[str, Any]:
    token: dict[str, Any] = ok(await http.post(TOKEN_PATH, data=app.form(scope)))
    return token


def oauth_error(response: httpx.Response, status: int, error: str) -> str:
    """The error_description, after checking the RFC 6749 error shape."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    description: str = body["error_description"]
    return description
