"""Key rotation with overlap: a new key is published first and signs only later (or on an
explicit activate), so an EHR that caches our JWKS keeps trusting our token requests.

The fake EHR's token endpoint verifies each client assertion against the JWKS it fetched at
registration and cached, as EHRs do for minutes; an assertion signed with a key that set does
not hold is refused, as a real EHR would refuse it."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from cryptography.fernet import Fernet
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import update

from service.connections.fhir_clients import backend_services_grant, connection_tokens
from service.connections.models import ConnectionKey
from service.connections.service import load_connection
from service.db.session import Database
from service.security.encryption import SecretBox
from service.smart.keys import ScheduledSigningKey, SigningKey, generate_key_pair, key_signing_at
from tests.connections.conftest import TOKEN_URL, registration
from tests.ehr.fakes import public_dns_policy


class CachingEhr:
    """A token endpoint that trusts the JWKS it cached, until told to refetch it."""

    def __init__(self, client: httpx.AsyncClient, jwks_url: str) -> None:
        self.client = client
        self.jwks_url = jwks_url
        self.cached: KeySet | None = None
        self.kids: list[str] = []

    async def refetch(self) -> None:
        self.cached = KeySet.import_key_set((await self.client.get(self.jwks_url)).json())

    def token(self, request: httpx.Request) -> httpx.Response:
        assert self.cached is not None
        assertion = parse_qs(request.content.decode())["client_assertion"][0]
        try:
            decoded = jwt.decode(assertion, self.cached, algorithms=["RS384", "ES384"])
        except (JoseError, ValueError) as error:
            return httpx.Response(
                400, json={"error": "invalid_client", "error_description": str(error)}
            )
        self.kids.append(str(decoded.header["kid"]))
        return httpx.Response(
            200, json={"access_token": "t", "token_type": "bearer", "expires_in": 300}
        )


async def _connection(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/api/admin/connections", json=registration())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _rotate(client: httpx.AsyncClient, connection: dict[str, Any]) -> httpx.Response:
    return await client.post(
        f"/api/admin/connections/{connection['id']}/keys/rotate",
        json={"signing_alg": "ES384"},
        headers={"If-Match": f'W/"{connection["version"]}"'},
    )


async def _token_check(client: httpx.AsyncClient, connection_id: str) -> httpx.Response:
    return await client.post(f"/api/admin/connections/{connection_id}/token-check")


async def test_a_rotated_key_is_published_at_once_and_signs_only_after_the_overlap(
    client: httpx.AsyncClient, ehr: respx.MockRouter, database: Database
) -> None:
    connection = await _connection(client)
    old_kid = connection["keys"][0]["kid"]
    fake = CachingEhr(client, f"/smart/connections/{connection['id']}/jwks.json")
    await fake.refetch()  # the EHR registered us and cached our JWKS
    ehr.post(TOKEN_URL).mock(side_effect=fake.token)

    rotated = await _rotate(client, connection)
    assert rotated.status_code == 200, rotated.text
    old, new = rotated.json()["keys"]
    assert new["signs_from"] is not None
    signs_from = dt.datetime.fromisoformat(new["signs_from"])
    overlap = signs_from - dt.datetime.fromisoformat(rotated.json()["updated_at"])
    assert overlap >= dt.timedelta(seconds=database.settings.smart_key_overlap_seconds - 1)
    assert dt.datetime.fromisoformat(old["retire_after"]) > signs_from
    jwks = (await client.get(fake.jwks_url)).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new["kid"]}

    # Within the overlap the EHR still trusts us with its stale JWKS: the old key signs.
    checked = await _token_check(client, connection["id"])
    assert checked.status_code == 200, checked.text
    assert checked.json()["kid"] == old_kid

    # Once the overlap is over (moved into the past rather than waited for), the new key signs,
    # and an EHR that refetched its JWKS in the meantime trusts it.
    async with database.transaction() as session:
        await session.execute(
            update(ConnectionKey)
            .where(ConnectionKey.kid == new["kid"])
            .values(signs_from=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    await fake.refetch()
    checked = await _token_check(client, connection["id"])
    assert checked.status_code == 200, checked.text
    assert checked.json()["kid"] == new["kid"]
    assert fake.kids == [old_kid, new["kid"]]


async def test_activate_lets_the_new_key_sign_at_once(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    connection = await _connection(client)
    fake = CachingEhr(client, f"/smart/connections/{connection['id']}/jwks.json")
    ehr.post(TOKEN_URL).mock(side_effect=fake.token)
    rotated = (await _rotate(client, connection)).json()
    new_kid = rotated["keys"][1]["kid"]
    url = f"/api/admin/connections/{connection['id']}/keys/activate"
    assert (await client.post(url)).status_code == 428
    activated = await client.post(url, headers={"If-Match": f'W/"{rotated["version"]}"'})
    assert activated.status_code == 200, activated.text
    old, new = activated.json()["keys"]
    now = dt.datetime.now(dt.UTC)
    assert dt.datetime.fromisoformat(new["signs_from"]) <= now
    # The old key stays published only for an assertion's lifetime plus clock skew.
    assert dt.datetime.fromisoformat(old["retire_after"]) <= now + dt.timedelta(minutes=11)
    await fake.refetch()
    checked = await _token_check(client, connection["id"])
    assert checked.status_code == 200, checked.text
    assert checked.json()["kid"] == new_kid
    again = await client.post(url, headers={"If-Match": f'W/"{activated.json()["version"]}"'})
    assert again.status_code == 409
    assert again.json()["rule"] == "connection.key.none-pending"


async def test_a_second_rotation_while_one_is_pending_is_refused(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    connection = await _connection(client)
    rotated = (await _rotate(client, connection)).json()
    again = await _rotate(client, rotated)
    assert again.status_code == 409
    assert again.json()["rule"] == "connection.key.rotation-pending"
    assert len((await client.get(f"/api/admin/connections/{connection['id']}")).json()["keys"]) == 2


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/smart/connections/{id}/jwks.json"])
async def test_jwks_urls_answer_head(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, ehr: respx.MockRouter, path: str
) -> None:
    connection = await _connection(client)
    response = await anonymous.head(path.format(id=connection["id"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"]


def _key(box: SecretBox) -> SigningKey:
    return generate_key_pair("ES384", box).signing_key


def test_a_schedule_signs_with_the_last_key_whose_time_has_come() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    first, second = _key(box), _key(box)
    switch = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    schedule = (ScheduledSigningKey(None, first), ScheduledSigningKey(switch, second))
    assert key_signing_at(schedule, switch - dt.timedelta(seconds=1)) is first
    assert key_signing_at(schedule, switch) is second
    with pytest.raises(ValueError, match="no key signs yet"):
        key_signing_at(schedule[1:], switch - dt.timedelta(seconds=1))


async def test_a_client_built_before_a_rotation_signs_with_the_key_that_replaced_it(
    client: httpx.AsyncClient, ehr: respx.MockRouter, database: Database
) -> None:
    """A pull job builds its client once and may run for hours: its token requests must sign
    with the connection's keys as they are then, not as they were when the job began."""
    connection = await _connection(client)
    assert database.settings.encryption_key is not None
    box = SecretBox(database.settings.encryption_key.get_secret_value())
    async with database.transaction(write=False) as session:
        row = await load_connection(session, connection["id"])
    grant = backend_services_grant(row, box)  # the long job's grant, made before the rotation
    tokens = connection_tokens(database, box, public_dns_policy())

    rotated = (await _rotate(client, connection)).json()
    activated = await client.post(
        f"/api/admin/connections/{connection['id']}/keys/activate",
        headers={"If-Match": f'W/"{rotated["version"]}"'},
    )
    assert activated.status_code == 200, activated.text
    old_kid, new_kid = (k["kid"] for k in activated.json()["keys"])
    # The old key's retirement moved into the past rather than waited for: the JWKS the EHR
    # fetches now holds the new key only.
    async with database.transaction() as session:
        await session.execute(
            update(ConnectionKey)
            .where(ConnectionKey.kid == old_kid)
            .values(retire_after=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    fake = CachingEhr(client, f"/smart/connections/{connection['id']}/jwks.json")
    await fake.refetch()
    assert [k["kid"] for k in fake.cached.as_dict()["keys"]] == [new_kid]  # type: ignore[union-attr]
    ehr.post(TOKEN_URL).mock(side_effect=fake.token)

    await tokens.fresh_token(grant)
    assert fake.kids == [new_kid]
