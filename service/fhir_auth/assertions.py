"""Client authentication with `private_key_jwt` (RFC 7523, SMART Backend Services).

The client signs a short-lived JWT with a key from its registered JWKS. We accept it when:

- the alg is RS384 or ES384 (never `none`, HS*, RS256 or anything else) and it names a `kid`;
- `iss` and `sub` are both the client_id of an enabled registered client;
- the signature verifies with that client's key of that `kid` (an unknown `kid` refreshes a
  JWKS URL once, then fails);
- `aud` is our token endpoint URL, `exp` is present, not past, and at most five minutes
  ahead, `iat` and `nbf` (when present) are not in the future (30 s of clock skew allowed);
- `jti` has not been used by this client before; it is stored until the assertion expires.

A missing assertion is `invalid_request`; every other failure is `invalid_client` (401),
with a description that says which check failed.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from joserfc import jwt
from joserfc.errors import ClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from service.db.session import Database
from service.ehr.url_policy import UrlPolicy
from service.fhir_auth import repository
from service.fhir_auth.client_keys import ClientKeysUnavailable, import_jwks
from service.fhir_auth.models import FhirClient
from service.fhir_auth.oauth_errors import InvalidClient, OAuthError
from service.fhir_auth.runtime import FhirAuthRuntime, token_url
from service.fhir_auth.unverified import peek
from service.settings import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME_SECONDS = 300
CLOCK_SKEW_SECONDS = 30
MAX_JTI_LENGTH = 255


async def _load_client(database: Database, client_id: str) -> FhirClient:
    async with database.transaction(write=False) as session:
        client = await repository.get_client(session, client_id)
    if client is None or not client.enabled:
        raise InvalidClient(f"no enabled client {client_id!r} is registered")
    return client


async def _keys(
    runtime: FhirAuthRuntime, policy: UrlPolicy, client: FhirClient, *, refresh: bool
) -> tuple[KeySet, bool]:
    """The client's keys and whether they could be any fresher."""
    if client.jwks is not None:
        try:
            return import_jwks(client.jwks), False
        except ValueError as exc:
            raise InvalidClient(f"the registered JWKS is unusable: {exc}") from exc
    assert client.jwks_url is not None  # one of the two, by the registration rules
    try:
        fetched = await runtime.client_keys.key_set(client.jwks_url, policy, refresh=refresh)
    except ClientKeysUnavailable as exc:
        raise InvalidClient(str(exc)) from exc
    return fetched.keys, not fetched.fetched_now


async def _verify_signature(
    runtime: FhirAuthRuntime, policy: UrlPolicy, client: FhirClient, assertion: str, kid: str
) -> dict[str, Any]:
    keys, may_refresh = await _keys(runtime, policy, client, refresh=False)
    algorithms = list(ASSERTION_ALGORITHMS)
    try:
        try:
            return jwt.decode(assertion, keys, algorithms=algorithms).claims
        except InvalidKeyIdError:
            if not may_refresh:
                raise
            keys, _ = await _keys(runtime, policy, client, refresh=True)
            return jwt.decode(assertion, keys, algorithms=algorithms).claims
    except InvalidKeyIdError as exc:
        raise InvalidClient(f"the client's JWKS has no key with kid {kid!r}") from exc
    except (JoseError, ValueError) as exc:
        raise InvalidClient(f"client_assertion signature rejected: {exc}") from exc


def _check_claims(claims: dict[str, Any], client_id: str, settings: Settings) -> None:
    registry = JWTClaimsRegistry(
        leeway=CLOCK_SKEW_SECONDS,
        iss={"essential": True, "value": client_id},
        sub={"essential": True, "value": client_id},
        aud={"essential": True, "value": token_url(settings)},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except ClaimError as exc:
        raise InvalidClient(f"client_assertion {exc.claim} rejected: {exc}") from exc
    except JoseError as exc:
        raise InvalidClient(f"client_assertion rejected: {exc}") from exc
    if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise InvalidClient("client_assertion exp is more than 5 minutes in the future")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise InvalidClient(f"client_assertion jti must be a string of 1-{MAX_JTI_LENGTH} chars")


async def _spend_jti(database: Database, client_id: str, jti: str, exp: float) -> None:
    now = dt.datetime.now(dt.UTC)
    # Kept past exp by the clock skew, as long as an assertion is accepted.
    keep_until = dt.datetime.fromtimestamp(exp + CLOCK_SKEW_SECONDS, dt.UTC)
    async with database.transaction() as session:
        await repository.purge_expired_assertions(session, now)
        fresh = await repository.record_assertion(session, client_id, jti, keep_until)
    if not fresh:
        raise InvalidClient("client_assertion jti was already used (replay)")


async def authenticate_client(
    database: Database,
    runtime: FhirAuthRuntime,
    policy: UrlPolicy,
    assertion_type: str | None,
    assertion: str | None,
    claimed_client_id: str | None = None,
) -> FhirClient:
    """The registered client that signed `assertion`; InvalidClient (or invalid_request).
    A `client_id` form parameter is optional (RFC 7523) but must name the same client."""
    if not assertion_type or not assertion:
        raise OAuthError(
            "invalid_request", "client_assertion_type and client_assertion are required"
        )
    if assertion_type != ASSERTION_TYPE:
        raise InvalidClient(f"client_assertion_type must be {ASSERTION_TYPE}")
    try:
        header, unverified = peek(assertion)
    except ValueError as exc:
        raise InvalidClient(f"client_assertion is {exc}") from exc
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:
        raise InvalidClient(f"alg {alg!r} is not accepted: sign with RS384 or ES384")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidClient("client_assertion header must name a kid")
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or not client_id or unverified.get("sub") != client_id:
        raise InvalidClient("client_assertion iss and sub must both be the client_id")
    if claimed_client_id is not None and claimed_client_id != client_id:
        raise InvalidClient("client_id does not match the client_assertion's iss")
    client = await _load_client(database, client_id)
    claims = await _verify_signature(runtime, policy, client, assertion, kid)
    _check_claims(claims, client_id, database.settings)
    await _spend_jti(database, client_id, claims["jti"], float(claims["exp"]))
    return client
