"""Backend Services against a real SMART server on loopback (sekmet-fhir): registration and
discovery, a token with RS384 and with ES384, reading data, and the server's refusals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc.jwk import ECKey, RSAKey

from service.connections.fhir_clients import backend_services_grant, fhir_client_for
from service.connections.service import load_connection
from service.db.session import Database
from service.ehr.client import FhirClient
from service.ehr.deps import get_url_policy
from service.ehr.errors import EhrAuthorizationError, EhrForbidden
from service.ehr.url_policy import UrlPolicy
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens
from tests.smart.sekmet_server import (
    ES384_CLIENT,
    RS384_CLIENT,
    SekmetServer,
    sekmet_binary,
    start_sekmet,
    stop,
)

pytestmark = pytest.mark.integration

LOOPBACK = UrlPolicy(allow_insecure_http=True, allow_private_networks=True)


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    binary = sekmet_binary()
    if binary is None:
        pytest.skip("the `sekmet` binary is missing: pip install sekmet-fhir (a test extra)")
    server, process = start_sekmet(binary, tmp_path_factory.mktemp("sekmet"))
    yield server
    stop(process)


@pytest.fixture
def loopback(app: FastAPI) -> Iterator[None]:
    """Loopback over http is what sekmet offers; production keeps the strict policy."""
    app.dependency_overrides[get_url_policy] = lambda: LOOPBACK
    yield
    app.dependency_overrides.pop(get_url_policy, None)


@dataclass
class Registered:
    id: str
    body: dict[str, Any]


class Casebridge:
    """Registers connections through the admin API and opens FHIR clients for them."""

    def __init__(self, client: httpx.AsyncClient, database: Database, server: SekmetServer):
        self.client = client
        self.database = database
        self.server = server
        key = database.settings.encryption_key
        assert key is not None
        self.box = SecretBox(key.get_secret_value())
        self.tokens = BackendServicesTokens(policy=LOOPBACK)

    async def register(
        self,
        client_id: str,
        alg: str,
        scopes: list[str],
        *,
        name: str | None = None,
        publish_to: str | None = None,
    ) -> Registered:
        response = await self.client.post(
            "/api/admin/connections",
            json={
                "name": name or f"sekmet {client_id} {alg}",
                "base_url": self.server.base_url,
                "auth_mode": "backend-services",
                "client_id": client_id,
                "scopes": scopes,
                "signing_alg": alg,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        await self.publish(body["id"], publish_to or client_id)
        return Registered(body["id"], body)

    async def publish(self, connection_id: str, sekmet_client: str) -> None:
        """Hand the EHR our public key, taken from our own JWKS URL."""
        jwks = (await self.client.get(f"/smart/connections/{connection_id}/jwks.json")).json()
        [jwk] = jwks["keys"]
        key = ECKey.import_key(jwk) if jwk["kty"] == "EC" else RSAKey.import_key(jwk)
        pem = key.as_pem(private=False)
        Path(self.server.public_key_path(sekmet_client)).write_bytes(pem)

    async def fhir(self, connection_id: str, scopes: tuple[str, ...] | None = None) -> FhirClient:
        async with self.database.transaction(write=False) as session:
            connection = await load_connection(session, connection_id)
        return fhir_client_for(
            connection,
            settings=self.database.settings,
            box=self.box,
            tokens=self.tokens,
            policy=LOOPBACK,
            scopes=scopes,
        )


@pytest.fixture
def casebridge(
    client: httpx.AsyncClient, database: Database, sekmet: SekmetServer, loopback: None
) -> Casebridge:
    return Casebridge(client, database, sekmet)


async def test_registration_discovers_the_real_server(
    casebridge: Casebridge, sekmet: SekmetServer
) -> None:
    registered = await casebridge.register(RS384_CLIENT, "RS384", ["system/Patient.rs"])
    capabilities = registered.body["capabilities"]
    assert capabilities["fhir_version"] == "4.0.1"
    assert capabilities["smart"]["source"] == "smart-configuration"
    assert capabilities["smart"]["token_endpoint"] == sekmet.token_url
    assert "read" in capabilities["resources"]["Patient"]["interactions"]
    assert "identifier" in capabilities["resources"]["Patient"]["search_params"]


@pytest.mark.parametrize(("client_id", "alg"), [(RS384_CLIENT, "RS384"), (ES384_CLIENT, "ES384")])
async def test_a_token_with_each_algorithm_reads_data(
    casebridge: Casebridge, client_id: str, alg: str
) -> None:
    registered = await casebridge.register(client_id, alg, ["system/Patient.rs"])
    async with await casebridge.fhir(registered.id) as fhir:
        patients = [patient async for patient in fhir.search("Patient", {"_count": "1"})]
        assert len(patients) == 2  # the seeded two, across pages
        again = await fhir.read("Patient", patients[0]["id"])
    assert again["id"] == patients[0]["id"]


async def test_every_new_assertion_is_accepted_because_its_jti_is_new(
    casebridge: Casebridge,
) -> None:
    registered = await casebridge.register(ES384_CLIENT, "ES384", ["system/Patient.rs"])
    async with casebridge.database.transaction(write=False) as session:
        connection = await load_connection(session, registered.id)
    grant = backend_services_grant(connection, casebridge.box)
    first = await casebridge.tokens.access_token(grant)
    second = await casebridge.tokens.reauthenticate(grant, first)
    third = await casebridge.tokens.reauthenticate(grant, second)
    assert len({first, second, third}) == 3


async def test_a_token_lacking_a_scope_is_refused_by_the_server(casebridge: Casebridge) -> None:
    registered = await casebridge.register(RS384_CLIENT, "RS384", ["system/Patient.rs"])
    async with await casebridge.fhir(registered.id) as fhir:
        with pytest.raises(EhrForbidden) as raised:
            await anext(fhir.search("Observation"))
    error = raised.value
    assert error.remote_status == 403
    assert error.outcome is not None
    assert error.outcome["resourceType"] == "OperationOutcome"
    # The server's own explanation reaches the caller.
    assert "do not permit" in error.detail
    assert "Observation" in error.detail


async def test_a_scope_the_client_may_not_have_is_refused_at_the_token_endpoint(
    casebridge: Casebridge,
) -> None:
    registered = await casebridge.register(ES384_CLIENT, "ES384", ["system/Patient.rs"])
    async with await casebridge.fhir(registered.id, scopes=("system/Encounter.rs",)) as fhir:
        with pytest.raises(EhrAuthorizationError) as raised:
            await fhir.read("Patient", "any")
    assert raised.value.error == "invalid_scope"


async def test_a_key_the_server_does_not_hold_is_refused_as_invalid_client(
    casebridge: Casebridge,
) -> None:
    ours = await casebridge.register(RS384_CLIENT, "RS384", ["system/Patient.rs"])
    # Another connection's key replaces ours in the server's registration of this client id.
    await casebridge.register(RS384_CLIENT, "RS384", ["system/Patient.rs"], name="another")
    async with await casebridge.fhir(ours.id) as fhir:
        with pytest.raises(EhrAuthorizationError) as raised:
            await fhir.read("Patient", "any")
    assert raised.value.error == "invalid_client"
    assert "verification failed" in (raised.value.error_description or "")


async def test_the_admin_token_check_reports_the_servers_refusal_as_a_problem(
    casebridge: Casebridge,
) -> None:
    allowed = await casebridge.register(ES384_CLIENT, "ES384", ["system/Patient.rs"])
    ok = await casebridge.client.post(f"/api/admin/connections/{allowed.id}/token-check")
    assert ok.status_code == 200, ok.text
    assert ok.json()["granted_scope"] == "system/Patient.rs"
    refused = await casebridge.register(
        RS384_CLIENT, "RS384", ["system/Encounter.rs"], name="not allowed"
    )
    response = await casebridge.client.post(f"/api/admin/connections/{refused.id}/token-check")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/ehr-authorization-failed")
    assert problem["error"] == "invalid_scope"
    assert "Encounter" in problem["error_description"]
