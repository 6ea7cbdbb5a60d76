"""By default the API process runs the dispatcher itself: a change to a linked case reaches the
EHR with no worker started by hand."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.db.session import Database
from service.settings import Settings
from tests.api.case_factory import ok
from tests.conftest import settings_for
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        allow_insecure_http=True,
        allow_private_networks=True,
        push_poll_seconds=0.05,
    )


async def test_the_app_pushes_in_process_by_default(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr
) -> None:
    assert database.settings.push_dispatcher_enabled
    connection = await fake_connection(database, capabilities(transaction=True))
    case = await case_of_linked_patient(client, database, connection, "p1")

    for _ in range(400):  # bounds a hung test; not a timing assertion
        [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
        if status["status"] == "synced":
            break
        await asyncio.sleep(0.05)

    assert status["status"] == "synced", status
    [plan] = fake.of_type("CarePlan")
    assert plan["identifier"][0]["value"] == case["id"]
