"""`authenticate_fhir`: our own access tokens and the external issuer's, under the same
scope rules. A probe route stands in for the /fhir endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import update

from service.db.session import Database
from service.fhir_auth import FhirPrincipalDep, Interaction
from service.fhir_auth.enabled_clients import EnabledClients
from service.fhir_auth.models import FhirClient
from service.settings import Settings
from tests.api.case_factory import ok
from tests.conftest import settings_for
from tests.fhir_auth.support import ES384_KEY, RS384_KEY, App, get_token, register

EXTERNAL_ISSUER = "https://idp.example.org/realms/smart"
EXTERNAL_JWKS_URL = EXTERNAL_ISSUER + "/protocol/openid-connect/certs"
EXTERNAL_KEY = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
PROBE = "/probe/{resource_type}/{patient_id}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        fhir_external_issuer=EXTERNAL_ISSUER,
        fhir_external_jwks_url=EXTERNAL_JWKS_URL,
    )


@pytest.fixture(autouse=True)
def probe(app: FastAPI) -> None:
    """Reads `resource_type` of `patient_id` the way /fhir will: require, then answer."""

    async def read(resource_type: str, patient_id: str, principal: FhirPrincipalDep) -> Any:
        principal.require(resource_type, Interaction.read, patient_id=patient_id)
        return {
            "subject": principal.subject,
            "patient": principal.patient,
            "scopes": [s.text for s in principal.scopes],
            "compartment": principal.compartment(resource_type, Interaction.search),
        }

    app.router.add_api_route(PROBE, read, methods=["GET"])


@pytest.fixture
def idp() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.get(EXTERNAL_JWKS_URL).respond(
            json={"keys": [EXTERNAL_KEY.as_dict(private=False) | {"alg": "RS256"}]}
        )


def external_token(key: RSAKey = EXTERNAL_KEY, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": EXTERNAL_ISSUER,
        "aud": "http://testserver/fhir",
        "sub": "dr-who",
        "exp": now + 300,
        "iat": now,
        "scope": "launch/patient openid patient/CarePlan.rs patient/Goal.read",
        "patient": "p1",
    } | overrides
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "idp-1"}, claims, key, algorithms=["RS256"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def fhir_app(client: httpx.AsyncClient) -> App:
    await register(client, "app-1", scopes=["system/CarePlan.rs", "system/Goal.cruds"])
    return App("app-1", ES384_KEY, "ES384")


async def test_our_token_is_enforced_by_its_scopes(
    anonymous: httpx.AsyncClient, fhir_app: App
) -> None:
    token = (await get_token(anonymous, fhir_app, "system/CarePlan.rs"))["access_token"]
    body = ok(await anonymous.get("/probe/CarePlan/p7", headers=bearer(token)))
    assert body == {
        "subject": "app-1",
        "patient": None,
        "scopes": ["system/CarePlan.rs"],
        "compartment": None,
    }
    refused = await anonymous.get("/probe/Goal/p7", headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/insufficient-scope")


async def test_missing_tampered_or_foreign_tokens_are_unauthenticated(
    anonymous: httpx.AsyncClient, fhir_app: App
) -> None:
    token = (await get_token(anonymous, fhir_app))["access_token"]
    header, _payload, signature = token.split(".")
    other = (await get_token(anonymous, fhir_app, "system/Goal.cruds"))["access_token"]
    spliced = ".".join([header, other.split(".")[1], signature])  # a payload with more scopes
    for headers in (
        {},
        bearer("garbage"),
        bearer(spliced),
        bearer(App("app-1", RS384_KEY, "RS384").assertion()),  # an assertion is not a token
        {"Authorization": f"Basic {token}"},
    ):
        response = await anonymous.get("/probe/CarePlan/p1", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_an_expired_token_of_ours_is_unauthenticated(
    anonymous: httpx.AsyncClient, fhir_app: App
) -> None:
    token = (await get_token(anonymous, fhir_app))["access_token"]
    app = anonymous._transport.app  # type: ignore[attr-defined]
    key = await app.state.fhir_auth.keyring.signing_key(app.state.database)
    claims = jwt.decode(token, key.jwk, algorithms=[key.alg]).claims
    ok(await anonymous.get("/probe/CarePlan/p1", headers=bearer(token)))
    claims["exp"] = int(time.time()) - 120  # the same token, signed by us, expired
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    stale = jwt.encode(header, claims, key.jwk, algorithms=[key.alg])
    response = await anonymous.get("/probe/CarePlan/p1", headers=bearer(stale))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_external_tokens_are_accepted_under_the_same_rules(
    anonymous: httpx.AsyncClient, idp: respx.Route
) -> None:
    token = external_token()
    body = ok(await anonymous.get("/probe/CarePlan/p1", headers=bearer(token)))
    assert body == {
        "subject": "dr-who",
        "patient": "p1",
        "scopes": ["patient/CarePlan.rs", "patient/Goal.read"],
        "compartment": "p1",
    }
    ok(await anonymous.get("/probe/Goal/p1", headers=bearer(token)))
    cross = await anonymous.get("/probe/CarePlan/p2", headers=bearer(token))  # cross-patient
    assert cross.status_code == 403
    assert "compartment of patient p1" in cross.json()["detail"]
    assert (await anonymous.get("/probe/Patient/p1", headers=bearer(token))).status_code == 403
    assert idp.call_count == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://someone-else.example.org/fhir"},
        {"exp": -60},
        {"iss": "https://evil.example.org"},
    ],
    ids=["wrong-aud", "expired", "untrusted-iss"],
)
async def test_bad_external_tokens_are_unauthenticated(
    anonymous: httpx.AsyncClient, idp: respx.Route, overrides: dict[str, Any]
) -> None:
    if "exp" in overrides:
        overrides = {"exp": int(time.time()) + overrides["exp"]}
    response = await anonymous.get(
        "/probe/CarePlan/p1", headers=bearer(external_token(**overrides))
    )
    assert response.status_code == 401


async def test_an_external_token_signed_by_another_key_is_unauthenticated(
    anonymous: httpx.AsyncClient, idp: respx.Route
) -> None:
    forged = external_token(key=RSAKey.generate_key(2048, parameters={"kid": "idp-1"}))
    response = await anonymous.get("/probe/CarePlan/p1", headers=bearer(forged))
    assert response.status_code == 401


async def test_a_disabled_or_deleted_clients_tokens_stop_at_once(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, fhir_app: App
) -> None:
    await register(client, "app-2", scopes=["system/CarePlan.rs"])
    token = (await get_token(anonymous, fhir_app))["access_token"]
    other = (await get_token(anonymous, App("app-2", ES384_KEY, "ES384")))["access_token"]
    for live in (token, other):
        ok(await anonymous.get("/probe/CarePlan/p1", headers=bearer(live)))

    url = "/api/admin/fhir-clients/app-1"
    ok(await client.patch(url, json={"enabled": False}, headers={"If-Match": "*"}))
    refused = await anonymous.get("/probe/CarePlan/p1", headers=bearer(token))
    assert refused.status_code == 401
    assert "disabled or deleted" in refused.json()["detail"]
    ok(await anonymous.get("/probe/CarePlan/p1", headers=bearer(other)))  # others go on

    ok(await client.patch(url, json={"enabled": True}, headers={"If-Match": "*"}))
    ok(await anonymous.get("/probe/CarePlan/p1", headers=bearer(token)))  # its token again
    assert (await client.delete("/api/admin/fhir-clients/app-2")).status_code == 204
    assert (await anonymous.get("/probe/CarePlan/p1", headers=bearer(other))).status_code == 401


async def test_a_client_disabled_by_another_process_is_refused_after_the_refresh(
    anonymous: httpx.AsyncClient, fhir_app: App, database: Database
) -> None:
    app = anonymous._transport.app  # type: ignore[attr-defined]
    enabled = EnabledClients(refresh_seconds=0.2)
    app.state.fhir_auth.enabled_clients = enabled
    token = (await get_token(anonymous, fhir_app))["access_token"]
    ok(await anonymous.get("/probe/CarePlan/p1", headers=bearer(token)))
    async with database.transaction() as session:  # as another process's admin API would
        await session.execute(
            update(FhirClient).where(FhirClient.client_id == "app-1").values(enabled=False)
        )
    await asyncio.sleep(0.25)
    assert (await anonymous.get("/probe/CarePlan/p1", headers=bearer(token))).status_code == 401


async def test_a_client_registered_after_the_last_read_is_looked_up_again(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, database: Database
) -> None:
    enabled: EnabledClients = anonymous._transport.app.state.fhir_auth.enabled_clients  # type: ignore[attr-defined]
    assert not await enabled.allows(database, "app-3", issued_at=0)  # read: no app-3 yet
    await register(client, "app-3", scopes=["system/CarePlan.rs"])
    # Registered as on another process: nothing told `enabled`, whose read is still fresh.
    token = (await get_token(anonymous, App("app-3", ES384_KEY, "ES384")))["access_token"]
    ok(await anonymous.get("/probe/CarePlan/p1", headers=bearer(token)))
    # A token older than the last read names a client that read did not find: no read again.
    last_read = enabled._read_at
    assert not await enabled.allows(database, "app-4", issued_at=0)
    assert enabled._read_at == last_read
