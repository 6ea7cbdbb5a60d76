"""Our JWKS: public parts only, every published key, and rotated keys leave after their grace."""

from __future__ import annotations

import datetime as dt

import httpx
import respx
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from service.connections.models import ConnectionKey
from service.db.session import Database
from service.security.encryption import SecretBox
from service.smart.keys import load_signing_key
from tests.connections.conftest import registration

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


async def _register(client: httpx.AsyncClient, name: str, alg: str) -> dict[str, object]:
    response = await client.post(
        "/api/admin/connections", json=registration(name=name, signing_alg=alg)
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _kids(jwks: dict[str, list[dict[str, str]]]) -> list[str]:
    return [key["kid"] for key in jwks["keys"]]


async def test_service_jwks_publishes_every_connection_key_without_private_parts(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, registry_ehr: respx.MockRouter
) -> None:
    rsa = await _register(client, "RSA EHR", "RS384")
    ec = await _register(client, "EC EHR", "ES384")
    response = await anonymous.get("/.well-known/jwks.json")  # public: no credentials
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=60"
    jwks = response.json()
    assert {(k["kty"], k["alg"], k["use"]) for k in jwks["keys"]} == {
        ("RSA", "RS384", "sig"),
        ("EC", "ES384", "sig"),
    }
    assert sorted(_kids(jwks)) == sorted(
        [rsa["keys"][0]["kid"], ec["keys"][0]["kid"]]  # type: ignore[index]
    )
    for key in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(key)


async def test_connection_jwks_verifies_what_the_connection_signs(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    registry_ehr: respx.MockRouter,
    database: Database,
) -> None:
    created = await _register(client, "EC EHR", "ES384")
    await _register(client, "Other", "RS384")
    jwks = (await anonymous.get(f"/smart/connections/{created['id']}/jwks.json")).json()
    assert len(jwks["keys"]) == 1
    async with database.transaction(write=False) as session:
        row = await session.scalar(
            select(ConnectionKey).where(ConnectionKey.connection_id == created["id"])
        )
    assert row is not None
    assert database.settings.encryption_key is not None
    box = SecretBox(database.settings.encryption_key.get_secret_value())
    signing = load_signing_key("ES384", row.kid, row.encrypted_private_pem, box)
    token = jwt.encode(
        {"alg": "ES384", "kid": signing.kid}, {"iss": "x"}, signing.jwk, algorithms=["ES384"]
    )
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES384"])
    assert decoded.claims == {"iss": "x"}


async def test_rotated_key_stays_published_until_its_retirement(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    registry_ehr: respx.MockRouter,
    database: Database,
) -> None:
    created = await _register(client, "EHR", "RS384")
    old_kid = created["keys"][0]["kid"]  # type: ignore[index]
    rotated = await client.post(
        f"/api/admin/connections/{created['id']}/keys/rotate",
        headers={"If-Match": f'W/"{created["version"]}"'},
    )
    new_kid = rotated.json()["keys"][1]["kid"]
    url = f"/smart/connections/{created['id']}/jwks.json"
    assert _kids((await anonymous.get(url)).json()) == [old_kid, new_kid]
    # Move the grace period into the past instead of waiting for it.
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    async with database.transaction() as session:
        await session.execute(
            update(ConnectionKey).where(ConnectionKey.kid == old_kid).values(retire_after=past)
        )
    assert _kids((await anonymous.get(url)).json()) == [new_kid]
    assert _kids((await anonymous.get("/.well-known/jwks.json")).json()) == [new_kid]


async def test_unknown_connection_has_no_jwks(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/smart/connections/nope/jwks.json")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
