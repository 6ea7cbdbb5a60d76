"""The token endpoint: client_credentials with a private_key_jwt assertion, and every way an
assertion or a scope request is refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from service.fhir_auth.client_keys import JWKS_TTL_SECONDS, REFRESH_COOLDOWN_SECONDS, ClientKeyCache
from service.fhir_auth.principal import principal_from_claims
from service.fhir_auth.scopes import Interaction
from tests.api.case_factory import ok
from tests.fhir_auth.support import (
    ES384_KEY,
    JWKS_URL,
    ROTATED_KEY,
    RS384_KEY,
    TOKEN_PATH,
    App,
    hmac_assertion,
    jwks,
    oauth_error,
    register,
    token_form,
    unsigned_assertion,
)

INLINE = App("inline-app", ES384_KEY, "ES384")


async def _issued_claims(client: httpx.AsyncClient, token: str) -> dict[str, object]:
    """Verify an access token the way a resource server would: with our public keys."""
    app = client._transport.app  # type: ignore[attr-defined]
    database = app.state.database
    keys: KeySet = await app.state.fhir_auth.keyring.verification_keys(database)
    decoded = jwt.decode(token, keys, algorithms=["RS384", "ES384"])
    assert decoded.header["typ"] == "at+jwt"
    return dict(decoded.claims)


@pytest.mark.parametrize(("key", "alg"), [(RS384_KEY, "RS384"), (ES384_KEY, "ES384")])
async def test_rs384_and_es384_assertions_get_a_scoped_short_lived_token(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, key: RSAKey, alg: str
) -> None:
    await register(client, "app-1")
    app = App("app-1", key, alg)
    response = await anonymous.post(TOKEN_PATH, data=app.form("system/CarePlan.rs"))
    body = ok(response)
    assert response.headers["cache-control"] == "no-store"
    assert body["token_type"] == "bearer"
    assert body["scope"] == "system/CarePlan.rs"
    assert 0 < body["expires_in"] <= 300
    claims = await _issued_claims(anonymous, body["access_token"])
    assert claims["client_id"] == claims["sub"] == "app-1"
    assert claims["scope"] == "system/CarePlan.rs"
    assert claims["aud"] == "http://testserver/fhir"
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - time.time() <= 300
    assert claims["jti"]
    principal = principal_from_claims(claims)
    assert principal.allows("CarePlan", Interaction.search)
    assert not principal.allows("CarePlan", Interaction.update)


async def test_one_signing_key_is_generated_and_reused(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    first = await _issued_claims(anonymous, (await _token(anonymous))["access_token"])
    second = await _issued_claims(anonymous, (await _token(anonymous))["access_token"])
    assert first["jti"] != second["jti"]
    app = anonymous._transport.app  # type: ignore[attr-defined]
    keys = await app.state.fhir_auth.keyring.verification_keys(app.state.database, refresh=True)
    assert len(keys.keys) == 1


async def _token(http: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        await http.post(TOKEN_PATH, data=App("app-1", ES384_KEY, "ES384").form())
    )
    return body


async def test_v1_scopes_are_granted_as_written(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1", scopes=["system/*.read", "system/Goal.write"])
    app = App("app-1", ES384_KEY, "ES384")
    body = ok(await anonymous.post(TOKEN_PATH, data=app.form("system/Goal.read system/Goal.cud")))
    assert body["scope"] == "system/Goal.read system/Goal.cud"


async def test_alg_none_is_refused(client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    await register(client, "app-1")
    form = token_form(unsigned_assertion("app-1", "ec-1"))
    assert "'none'" in oauth_error(
        await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client"
    )


async def test_hs256_signed_with_the_public_key_is_refused(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """The classic confusion attack: HMAC keyed with the client's public key bytes."""
    await register(client, "app-1")
    form = token_form(hmac_assertion("app-1", RS384_KEY.as_pem(private=False)))
    assert "HS256" in oauth_error(
        await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client"
    )


async def test_rs256_is_refused(client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    await register(client, "app-1")
    form = App("app-1", RS384_KEY, "RS256").form()
    assert "RS256" in oauth_error(
        await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client"
    )


async def test_a_signature_by_another_key_with_the_same_kid_is_refused(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    form = App("app-1", impostor, "RS384").form()
    message = oauth_error(await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client")
    assert "signature" in message


@pytest.mark.parametrize(
    ("claims", "seconds_from_now", "complaint"),
    [
        ({"aud": "https://other.example.org/token"}, {}, "aud"),
        ({"aud": None}, {}, "aud"),
        ({}, {"exp": -120}, "exp"),
        ({"exp": None}, {}, "exp"),
        ({}, {"exp": 3600}, "5 minutes"),
        ({}, {"iat": 600}, "iat"),
        ({}, {"nbf": 600}, "nbf"),
        ({"jti": None}, {}, "jti"),
        ({"sub": "someone-else"}, {}, "sub"),
    ],
    ids=[
        "wrong-aud",
        "no-aud",
        "expired",
        "no-exp",
        "exp-too-far",
        "iat-future",
        "nbf-future",
        "no-jti",
        "sub",
    ],
)
async def test_bad_assertion_claims_are_refused(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    claims: dict[str, object],
    seconds_from_now: dict[str, int],
    complaint: str,
) -> None:
    await register(client, "app-1")
    now = int(time.time())
    claims = claims | {name: now + delta for name, delta in seconds_from_now.items()}
    form = token_form(App("app-1", ES384_KEY, "ES384").assertion(**claims))
    message = oauth_error(await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client")
    assert complaint in message


async def test_a_replayed_jti_is_refused(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    assertion = App("app-1", ES384_KEY, "ES384").assertion()
    ok(await anonymous.post(TOKEN_PATH, data=token_form(assertion)))
    again = await anonymous.post(TOKEN_PATH, data=token_form(assertion))
    assert "replay" in oauth_error(again, 401, "invalid_client")
    # The same jti in a new assertion is a replay too.
    jti = uuid.uuid4().hex
    ok(await anonymous.post(TOKEN_PATH, data=App("app-1", ES384_KEY, "ES384").form(jti=jti)))
    reused = await anonymous.post(TOKEN_PATH, data=App("app-1", RS384_KEY, "RS384").form(jti=jti))
    assert "replay" in oauth_error(reused, 401, "invalid_client")


async def test_expired_jtis_are_purged(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    from sqlalchemy import func, select

    from service.fhir_auth.models import UsedAssertion

    await register(client, "app-1")
    app = anonymous._transport.app  # type: ignore[attr-defined]
    database = app.state.database
    import datetime as dt

    async with database.transaction() as session:
        session.add(
            UsedAssertion(
                client_id="app-1",
                jti="old",
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
            )
        )
    ok(await anonymous.post(TOKEN_PATH, data=App("app-1", ES384_KEY, "ES384").form()))
    async with database.transaction(write=False) as session:
        jtis = (await session.scalars(select(UsedAssertion.jti))).all()
        assert await session.scalar(select(func.count()).select_from(UsedAssertion)) == 1
    assert "old" not in jtis


async def test_scope_escalation_is_refused(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1", scopes=["system/CarePlan.rs", "system/Goal.r"])
    app = App("app-1", ES384_KEY, "ES384")
    for asked in (
        "system/CarePlan.cruds",  # more interactions
        "system/CarePlan.write",  # v1 write = cud
        "system/*.rs",  # every type
        "system/Patient.r",  # another type
        "patient/CarePlan.rs",  # another context
        "system/Goal.rs",  # r and s on Goal: only r is allowed
    ):
        response = await anonymous.post(TOKEN_PATH, data=app.form(asked))
        assert asked in oauth_error(response, 400, "invalid_scope")
    assert "order c, r, u, d, s" in oauth_error(
        await anonymous.post(TOKEN_PATH, data=app.form("system/CarePlan.sr")), 400, "invalid_scope"
    )
    assert "required" in oauth_error(
        await anonymous.post(TOKEN_PATH, data=app.form(None)), 400, "invalid_scope"
    )
    # Non-resource scopes are ignored; what is left must still be covered.
    body = ok(await anonymous.post(TOKEN_PATH, data=app.form("openid system/CarePlan.s")))
    assert body["scope"] == "system/CarePlan.s"


async def test_wildcard_allowance_covers_every_type(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1", scopes=["system/*.rs"])
    app = App("app-1", ES384_KEY, "ES384")
    body = ok(await anonymous.post(TOKEN_PATH, data=app.form("system/Patient.r system/*.s")))
    assert body["scope"] == "system/Patient.r system/*.s"


async def test_unknown_and_disabled_clients_are_refused(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    form = App("nobody", ES384_KEY, "ES384").form()
    oauth_error(await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client")
    await register(client, "app-1", enabled=False)
    form = App("app-1", ES384_KEY, "ES384").form()
    assert "no enabled client" in oauth_error(
        await anonymous.post(TOKEN_PATH, data=form), 401, "invalid_client"
    )


async def test_request_shape_errors(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    good = App("app-1", ES384_KEY, "ES384").form()
    oauth_error(
        await anonymous.post(TOKEN_PATH, data=good | {"grant_type": "authorization_code"}),
        400,
        "unsupported_grant_type",
    )
    oauth_error(
        await anonymous.post(TOKEN_PATH, data={k: v for k, v in good.items() if k != "grant_type"}),
        400,
        "invalid_request",
    )
    oauth_error(await anonymous.post(TOKEN_PATH, json=good), 400, "invalid_request")
    repeated = "&".join(f"{k}={v}" for k, v in good.items()) + "&scope=system/Goal.r"
    response = await anonymous.post(
        TOKEN_PATH,
        content=repeated,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "scope" in oauth_error(response, 400, "invalid_request")
    ok(
        await anonymous.post(
            TOKEN_PATH, data=App("app-1", ES384_KEY, "ES384").form() | {"client_id": "app-1"}
        )
    )
    mismatch = App("app-1", ES384_KEY, "ES384").form() | {"client_id": "app-2"}
    assert "client_id" in oauth_error(
        await anonymous.post(TOKEN_PATH, data=mismatch), 401, "invalid_client"
    )
    wrong_type = good | {"client_assertion_type": "urn:example:password"}
    oauth_error(await anonymous.post(TOKEN_PATH, data=wrong_type), 401, "invalid_client")
    oauth_error(
        await anonymous.post(TOKEN_PATH, data=good | {"client_assertion": "not-a-jwt"}),
        401,
        "invalid_client",
    )


async def test_jwks_url_is_fetched_once_and_cached(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, jwks_route: respx.Route
) -> None:
    await register(client, "url-app", jwks_url=JWKS_URL)
    app = App("url-app", RS384_KEY, "RS384")
    ok(await anonymous.post(TOKEN_PATH, data=app.form()))
    ok(await anonymous.post(TOKEN_PATH, data=app.form()))
    assert jwks_route.call_count == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: FastAPI) -> FakeClock:
    """The client-JWKS cache on a clock the test moves (no sleeping)."""
    fake = FakeClock()
    runtime = app.state.fhir_auth
    runtime.client_keys = ClientKeyCache(runtime.http, clock=fake)
    return fake


async def test_unknown_kid_refreshes_the_jwks_once_then_refuses(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    jwks_route: respx.Route,
    clock: FakeClock,
) -> None:
    await register(client, "url-app", jwks_url=JWKS_URL)
    ok(await anonymous.post(TOKEN_PATH, data=App("url-app", ES384_KEY, "ES384").form()))
    assert jwks_route.call_count == 1
    clock.now += REFRESH_COOLDOWN_SECONDS
    rotated = App("url-app", ROTATED_KEY, "ES384")
    response = await anonymous.post(TOKEN_PATH, data=rotated.form())
    assert "ec-2" in oauth_error(response, 401, "invalid_client")
    assert jwks_route.call_count == 2  # one refresh, no more
    # The client publishes its new key: the next unknown-kid refresh finds it.
    jwks_route.respond(json=jwks(ES384_KEY, ROTATED_KEY))
    clock.now += REFRESH_COOLDOWN_SECONDS
    ok(await anonymous.post(TOKEN_PATH, data=rotated.form()))
    assert jwks_route.call_count == 3


async def test_unknown_kids_cannot_make_us_fetch_the_jwks_on_every_request(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    jwks_route: respx.Route,
    clock: FakeClock,
) -> None:
    await register(client, "url-app", jwks_url=JWKS_URL)
    ok(await anonymous.post(TOKEN_PATH, data=App("url-app", ES384_KEY, "ES384").form()))
    clock.now += REFRESH_COOLDOWN_SECONDS
    for _ in range(5):
        response = await anonymous.post(
            TOKEN_PATH, data=App("url-app", ROTATED_KEY, "ES384").form()
        )
        oauth_error(response, 401, "invalid_client")
    assert jwks_route.call_count == 2  # one refresh, then the cooldown holds
    clock.now += JWKS_TTL_SECONDS  # the cached set expires as usual
    ok(await anonymous.post(TOKEN_PATH, data=App("url-app", ES384_KEY, "ES384").form()))
    assert jwks_route.call_count == 3


async def test_a_cold_cache_fetches_once_for_an_unknown_kid(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, jwks_route: respx.Route
) -> None:
    await register(client, "url-app", jwks_url=JWKS_URL)
    response = await anonymous.post(TOKEN_PATH, data=App("url-app", ROTATED_KEY, "ES384").form())
    oauth_error(response, 401, "invalid_client")
    assert jwks_route.call_count == 1  # just fetched: refreshing again would change nothing


async def test_an_unreachable_jwks_url_is_invalid_client(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, jwks_route: respx.Route
) -> None:
    await register(client, "url-app", jwks_url=JWKS_URL)
    jwks_route.respond(status_code=503)
    response = await anonymous.post(TOKEN_PATH, data=App("url-app", ES384_KEY, "ES384").form())
    assert "503" in oauth_error(response, 401, "invalid_client")


async def test_one_assertion_sent_twice_at_once_gets_one_token(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """The replay check is the database's primary key, not a read-then-write: on PostgreSQL
    the two requests really overlap, and still only one wins."""
    await register(client, "app-1")
    form = token_form(App("app-1", ES384_KEY, "ES384").assertion())
    responses = await asyncio.gather(*(anonymous.post(TOKEN_PATH, data=form) for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401]
