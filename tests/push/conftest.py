"""Push tests run their own dispatchers (the app's in-process one is off) and may talk to a
loopback EHR over http."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx

from mappings.canonical import IDENTIFIER_SYSTEM
from service.db.session import Database
from service.ehr.client import FhirClient
from service.push.dispatcher import PushDispatcher
from service.settings import Settings
from tests.conftest import settings_for
from tests.push.fake_ehr import FakeEhr
from tests.smart.sekmet_server import RS384_CLIENT, SekmetServer, sekmet_binary, start_sekmet, stop
from tests.smart.test_sekmet_integration import Casebridge


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        push_dispatcher_enabled=False,
        allow_insecure_http=True,
        allow_private_networks=True,
        push_lease_seconds=2.0,
        push_retry_base_seconds=0.01,
        push_retry_max_seconds=0.05,
    )


WRITE_SCOPES = (
    "system/CarePlan.cruds system/Goal.cruds system/ServiceRequest.cruds system/Condition.cruds "
    "system/CareTeam.cruds system/Provenance.cruds system/Patient.cruds "
    "system/Practitioner.cruds system/Organization.cruds"
)


TRANSACTION_SCOPE = "system/*.cruds"


@pytest.fixture(scope="session")
def writable_sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    binary = sekmet_binary()
    if binary is None:
        pytest.skip("the `sekmet` binary is missing: pip install sekmet-fhir (a test extra)")
    # sekmet checks a transaction against a `system/*` scope, which a connection may ask for.
    allowed = f"{WRITE_SCOPES} {TRANSACTION_SCOPE}"
    server, process = start_sekmet(binary, tmp_path_factory.mktemp("sekmet-push"), allowed)
    yield server
    stop(process)


@dataclass
class Ehr:
    connection_id: str
    fhir: FhirClient

    async def by_identifier(self, resource_type: str, value: str) -> list[dict[str, Any]]:
        system = IDENTIFIER_SYSTEM[resource_type]
        return [
            r async for r in self.fhir.search(resource_type, [("identifier", f"{system}|{value}")])
        ]


async def register_ehr(
    client: httpx.AsyncClient,
    database: Database,
    server: SekmetServer,
    scopes: str = WRITE_SCOPES,
) -> Ehr:
    """A Backend Services connection to `server` with write scopes, and a client for it."""
    casebridge = Casebridge(client, database, server)
    registered = await casebridge.register(RS384_CLIENT, "RS384", scopes.split())
    return Ehr(registered.id, await casebridge.fhir(registered.id))


@pytest.fixture
async def ehr(
    client: httpx.AsyncClient, database: Database, writable_sekmet: SekmetServer
) -> AsyncIterator[Ehr]:
    registered = await register_ehr(client, database, writable_sekmet)
    yield registered
    await registered.fhir.aclose()


@pytest.fixture
def fake() -> Iterator[FakeEhr]:
    ehr = FakeEhr()
    with respx.mock(assert_all_called=False) as router:
        ehr.install(router)
        yield ehr


@pytest.fixture
async def dispatcher(database: Database) -> AsyncIterator[PushDispatcher]:
    pusher = PushDispatcher(database)
    yield pusher
    await pusher.close()
