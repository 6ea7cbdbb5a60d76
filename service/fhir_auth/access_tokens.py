"""Our access tokens for /fhir: JWTs (RFC 9068 `at+jwt`) signed with the service's own key.

Claims: `iss` (our base URL), `aud` (our /fhir base URL), `sub` and `client_id` (the client),
`scope` (the granted SMART scopes, as requested), `jti`, `iat` and `exp`. They are verified by
signature, alg, typ, iss, aud and exp, and their client must still be enabled: a disabled or
deleted client's tokens stop working (`EnabledClients` says how soon on each process).
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwt import JWTClaimsRegistry

from service.db.session import Database
from service.errors import Unauthenticated
from service.fhir_auth.runtime import FhirAuthRuntime, fhir_base_url, issuer
from service.fhir_auth.scopes import Scope, scope_string
from service.settings import Settings

TOKEN_ALGORITHMS = ["RS384", "ES384"]
TOKEN_TYPE = "at+jwt"
CLOCK_SKEW_SECONDS = 30


async def issue_access_token(
    database: Database,
    runtime: FhirAuthRuntime,
    settings: Settings,
    client_id: str,
    scopes: tuple[Scope, ...],
) -> dict[str, Any]:
    """The token response body (RFC 6749 section 5.1)."""
    key = await runtime.keyring.signing_key(database)
    now = int(time.time())
    lifetime = settings.fhir_access_token_lifetime_seconds
    granted = scope_string(scopes)
    claims = {
        "iss": issuer(settings),
        "aud": fhir_base_url(settings),
        "sub": client_id,
        "client_id": client_id,
        "scope": granted,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + lifetime,
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": TOKEN_TYPE}
    token = jwt.encode(header, claims, key.jwk, algorithms=[key.alg])
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": lifetime,
        "scope": granted,
    }


@functools.cache
def _claims_registry(token_issuer: str, audience: str) -> JWTClaimsRegistry:
    return JWTClaimsRegistry(
        leeway=CLOCK_SKEW_SECONDS,
        iss={"essential": True, "value": token_issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
        client_id={"essential": True},
        scope={"essential": True},
    )


async def verify_access_token(
    database: Database, runtime: FhirAuthRuntime, settings: Settings, token: str
) -> dict[str, Any]:
    """The claims of one of our valid access tokens; Unauthenticated otherwise."""
    registry = _claims_registry(issuer(settings), fhir_base_url(settings))
    claims = runtime.verified_tokens.get(token)
    try:
        if claims is None:
            claims = await _verified_claims(runtime, database, token)
        registry.validate(claims)  # exp and the rest, on every use of a cached token too
    except (JoseError, ValueError) as exc:
        raise Unauthenticated(f"bearer token rejected: {exc}") from exc
    issued_at = claims.get("iat")
    if not await runtime.enabled_clients.allows(
        database,
        str(claims["client_id"]),
        issued_at if isinstance(issued_at, int | float) else math.inf,
    ):
        raise Unauthenticated("bearer token rejected: its client is disabled or deleted")
    runtime.verified_tokens.put(token, claims)
    return claims


async def _verified_claims(
    runtime: FhirAuthRuntime, database: Database, token: str
) -> dict[str, Any]:
    """Signature, alg and typ; the claims are checked by the caller."""
    keyring = runtime.keyring
    try:
        decoded = jwt.decode(
            token, await keyring.verification_keys(database), algorithms=TOKEN_ALGORITHMS
        )
    except InvalidKeyIdError:
        # Another process may have generated a key since we loaded ours.
        keys = await keyring.verification_keys(database, refresh=True)
        decoded = jwt.decode(token, keys, algorithms=TOKEN_ALGORITHMS)
    if decoded.header.get("typ") != TOKEN_TYPE:
        raise Unauthenticated("bearer token rejected: not an access token (typ)")
    return decoded.claims
