"""With `fhir_token_signing_alg=RS384` our access tokens are RS384, and still verify."""

from __future__ import annotations

import httpx
import pytest
from joserfc import jws

from service.settings import Settings
from tests.api.case_factory import ok
from tests.conftest import BOOTSTRAP_KEY, settings_for
from tests.fhir_auth.support import ES384_KEY, INTROSPECT_PATH, App, get_token, register


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url, fhir_token_signing_alg="RS384")


async def test_tokens_are_signed_with_an_rs384_key(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    token = (await get_token(anonymous, App("app-1", ES384_KEY, "ES384")))["access_token"]
    header = jws.extract_compact(token.encode()).headers()
    assert header["alg"] == "RS384"
    assert header["typ"] == "at+jwt"
    response = await anonymous.post(
        INTROSPECT_PATH, data={"token": token}, headers={"X-API-Key": BOOTSTRAP_KEY}
    )
    assert ok(response)["active"] is True
