"""A pull job over SMART Backend Services against sekmet on loopback: the runner gets its own
tokens, reads what the granted scopes allow, and reports each type the server refuses with the
server's reason while the rest of the pull goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from service.db.session import Database
from service.pull.runner import PullRunner
from tests.smart.sekmet_server import RS384_CLIENT, SekmetServer, sekmet_binary, start_sekmet, stop
from tests.smart.test_sekmet_integration import Casebridge

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smart_ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    binary = sekmet_binary()
    if binary is None:
        pytest.skip("the `sekmet` binary is missing: pip install sekmet-fhir (a test extra)")
    server, process = start_sekmet(binary, tmp_path_factory.mktemp("pull-smart"))
    yield server
    stop(process)


async def test_a_pull_with_backend_services_reads_what_its_scopes_allow(
    app: FastAPI, client: httpx.AsyncClient, database: Database, smart_ehr: SekmetServer
) -> None:
    casebridge = Casebridge(client, database, smart_ehr)
    registered = await casebridge.register(
        RS384_CLIENT, "RS384", ["system/Patient.rs", "system/Observation.rs"]
    )
    async with await casebridge.fhir(registered.id) as fhir:
        remote_ids = [p["id"] async for p in fhir.search("Patient")]
    assert len(remote_ids) == 2
    started = await client.post(
        f"/api/connections/{registered.id}/pulls",
        json={"patients": [{"remote_id": remote_id} for remote_id in remote_ids]},
    )
    assert started.status_code == 202, started.text
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), 120)
    job = (await client.get(started.headers["Location"])).json()
    assert job["patients_done"] == 2
    assert job["counts"]["Patient"] == 2
    assert "Observation" in job["counts"]
    refused = {(f["target"], f["resource_type"]) for f in job["failures"]}
    # Every type outside the token's scopes is refused by the server, for each patient, with
    # the server's own explanation; Patient and Observation are not among them.
    for remote_id in remote_ids:
        for kind in ("Condition", "Encounter", "CarePlan", "ServiceRequest"):
            assert (f"Patient/{remote_id}", kind) in refused
    assert not {kind for _, kind in refused} & {"Patient", "Observation"}
    assert all("403" in f["reason"] for f in job["failures"] if f["resource_type"] == "Condition")
    assert job["state"] == "completed_with_errors"
