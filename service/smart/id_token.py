"""Verify an OpenID Connect id_token from an EHR before its `fhirUser` claim is believed.

The signature is checked against the EHR's discovered `jwks_uri` (which passes the SSRF policy
first), and `iss`, `aud` and `exp` are checked with joserfc's claims registry.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from service.ehr.errors import EhrProtocolError
from service.ehr.pinned_transport import vetted_transport
from service.ehr.url_policy import UrlPolicy

ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]


async def verified_id_token_claims(
    id_token: str,
    *,
    jwks_uri: str,
    issuer: str | None,
    client_id: str,
    policy: UrlPolicy,
    timeout_seconds: float = 30.0,
) -> dict[str, Any]:
    await policy.check(jwks_uri)
    try:
        async with httpx.AsyncClient(
            transport=vetted_transport(policy), timeout=timeout_seconds, follow_redirects=False
        ) as http:
            response = await http.get(jwks_uri)
        response.raise_for_status()
        key_set = KeySet.import_key_set(response.json())
    except (httpx.HTTPError, ValueError, JoseError) as exc:
        raise EhrProtocolError(f"the EHR's JWKS is not usable: {exc}", url=jwks_uri) from exc
    try:
        token = jwt.decode(id_token, key_set, algorithms=ID_TOKEN_ALGORITHMS)
        claims_rules: dict[str, Any] = {
            "aud": {"essential": True, "value": client_id},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        if issuer is not None:
            claims_rules["iss"] = {"essential": True, "value": issuer}
        JWTClaimsRegistry(now=int(time.time()), leeway=60, **claims_rules).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise EhrProtocolError(f"the id_token failed verification: {exc}", url=jwks_uri) from exc
    return dict(token.claims)
