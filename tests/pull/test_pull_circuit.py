"""A pull that meets an open circuit is put off until the circuit's probe and run again,
instead of recording the patient's record as failed (respx EHR; the cool-down is 50 ms)."""

from __future__ import annotations

import httpx
import pytest
import respx
from fastapi import FastAPI

from service.settings import Settings
from tests.conftest import settings_for
from tests.pull.test_pull_api import CONDITION, MRN, bundle, pull, remote_patient, serve_record


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        allow_insecure_http=True,
        allow_private_networks=True,
        ehr_timeout_seconds=1.0,
        ehr_max_retries=0,
        ehr_breaker_failure_threshold=2,
        ehr_breaker_cooldown_seconds=0.05,
        pull_poll_seconds=0.2,
    )


async def test_a_pull_held_back_by_an_open_circuit_runs_again_after_the_probe(
    app: FastAPI, client: httpx.AsyncClient, ehr: respx.MockRouter, connection_id: str
) -> None:
    failures_left = 3

    def conditions(request: httpx.Request) -> httpx.Response:
        nonlocal failures_left
        if failures_left:
            failures_left -= 1
            return httpx.Response(503)
        return httpx.Response(200, json=bundle(CONDITION))

    routes = serve_record(ehr, remote_patient(MRN), Condition=conditions)
    job = await pull(app, client, connection_id)
    assert job["state"] == "succeeded", job["failures"]
    assert job["counts"]["Condition"] == 1
    assert failures_left == 0
    assert routes["Condition"].call_count == 4  # 2 failures opened it; after the probe, 1 + 1
