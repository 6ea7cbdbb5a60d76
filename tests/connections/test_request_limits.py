"""The requests in flight to one EHR are bounded per process across every client of the
connection, at this process's share of `ehr_max_concurrency` (`/ ehr_processes`)."""

from __future__ import annotations

import asyncio

import httpx
import respx

from service.connections.fhir_clients import fhir_client_for
from service.connections.models import AuthMode, Connection
from service.db.session import Database
from service.ehr.request_limits import process_share
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens
from tests.conftest import settings_for
from tests.ehr.fakes import BASE, public_dns_policy


def test_each_process_holds_its_share_and_at_least_one() -> None:
    url = "sqlite+aiosqlite:///unused.db"
    assert process_share(settings_for(url, ehr_max_concurrency=8, ehr_processes=4)) == 2
    assert process_share(settings_for(url, ehr_max_concurrency=8, ehr_processes=3)) == 2
    assert process_share(settings_for(url, ehr_max_concurrency=2, ehr_processes=5)) == 1


async def test_two_clients_of_one_connection_share_the_processs_share(database: Database) -> None:
    settings = database.settings.model_copy(update={"ehr_max_concurrency": 6, "ehr_processes": 3})
    async with database.transaction() as session:
        connection = Connection(
            name="open ehr",
            base_url=BASE,
            auth_mode=AuthMode.none,
            client_id=None,
            scopes=[],
            signing_alg="RS384",
            capabilities=None,
            keys=[],
        )
        session.add(connection)
        await session.flush()
    assert settings.encryption_key is not None
    box = SecretBox(settings.encryption_key.get_secret_value())
    tokens = BackendServicesTokens(policy=public_dns_policy())
    in_flight = 0
    most = 0
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 2:
            arrived.set()
        await release.wait()
        in_flight -= 1
        return httpx.Response(200, json={"resourceType": "Patient", "id": "p1"})

    clients = [
        fhir_client_for(
            connection, settings=settings, box=box, tokens=tokens, policy=public_dns_policy()
        )
        for _ in range(2)
    ]
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Patient/p1").mock(side_effect=answer)
        reads = [
            asyncio.create_task(fhir.read("Patient", "p1")) for fhir in clients for _ in range(4)
        ]
        await asyncio.wait_for(arrived.wait(), 10)  # a limit against a hang only
        for _ in range(20):
            await asyncio.sleep(0)  # room for a third request, were one allowed
        assert in_flight == 2
        release.set()
        await asyncio.gather(*reads)
    for fhir in clients:
        await fhir.aclose()
    assert most == 2  # 6 / 3 processes, across both clients
