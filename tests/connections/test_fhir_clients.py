"""A registered connection becomes an authenticated FHIR client: its own key signs, its scopes
are requested, its discovered token endpoint is used."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import KeySet

from service.connections.fhir_clients import fhir_client_for
from service.connections.service import load_connection
from service.db.session import Database
from service.errors import RuleViolation
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens
from tests.connections.conftest import TOKEN_URL, registration
from tests.ehr.fakes import BASE, public_dns_policy


@pytest.fixture
def box(database: Database) -> SecretBox:
    assert database.settings.encryption_key is not None
    return SecretBox(database.settings.encryption_key.get_secret_value())


async def test_a_backend_services_connection_reads_with_its_own_token(
    client: httpx.AsyncClient, ehr: respx.MockRouter, database: Database, box: SecretBox
) -> None:
    created = (
        await client.post("/api/admin/connections", json=registration(signing_alg="ES384"))
    ).json()
    token_route = ehr.post(TOKEN_URL).respond(
        json={"access_token": "abc", "token_type": "Bearer", "expires_in": 600}
    )
    patient_route = ehr.get(f"{BASE}/Patient/p1").respond(
        json={"resourceType": "Patient", "id": "p1"}
    )
    async with database.transaction(write=False) as session:
        connection = await load_connection(session, created["id"])
    tokens = BackendServicesTokens(policy=public_dns_policy())
    async with fhir_client_for(
        connection, settings=database.settings, box=box, tokens=tokens, policy=public_dns_policy()
    ) as fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"
    assert patient_route.calls.last.request.headers["Authorization"] == "Bearer abc"
    form = {k: v[0] for k, v in parse_qs(token_route.calls.last.request.content.decode()).items()}
    assert form["scope"] == "system/Patient.rs system/Goal.rs"
    jwks = (await client.get(created["jwks_url"].removeprefix("http://testserver"))).json()
    verified = jwt.decode(form["client_assertion"], KeySet.import_key_set(jwks), ["ES384"])
    assert verified.claims["iss"] == "casebridge-client"


async def test_app_launch_connections_have_no_system_client(
    client: httpx.AsyncClient, ehr: respx.MockRouter, database: Database, box: SecretBox
) -> None:
    created = (
        await client.post("/api/admin/connections", json=registration(auth_mode="app-launch"))
    ).json()
    async with database.transaction(write=False) as session:
        connection = await load_connection(session, created["id"])
    tokens = BackendServicesTokens(policy=public_dns_policy())
    with pytest.raises(RuleViolation, match="App Launch"):
        fhir_client_for(connection, settings=database.settings, box=box, tokens=tokens)
