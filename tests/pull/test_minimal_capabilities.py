"""A server whose CapabilityStatement declares no search parameter, and that has no SMART
discovery (sekmet-fhir behind tests/pull/capability_proxy.py): the pull probes each patient
search once, remembers the answer for the connection, and honours an admin's override."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from service.db.session import Database
from tests.pull.capability_proxy import MinimalCapabilityProxy
from tests.pull.conftest import server_record
from tests.pull.ehr_server import SeededEhr
from tests.pull.test_pull_sekmet import assert_same, register, run_pull, stored

pytestmark = pytest.mark.integration


async def test_a_server_with_a_minimal_capability_statement_is_pulled_from(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    first, second = seeded_ehr.patient_ids[8:10]
    with MinimalCapabilityProxy(seeded_ehr.base_url) as proxy:
        connection_id = await register(client, proxy.base_url, "minimal statement")
        connection = (await client.get(f"/api/admin/connections/{connection_id}")).json()
        assert connection["capabilities"]["smart"] is None
        assert connection["capabilities"]["resources"]["Condition"]["search_params"] == []

        job = await run_pull(app, client, connection_id, [first])
        assert job["state"] == "succeeded", job["failures"]
        async with httpx.AsyncClient(timeout=60) as http:
            expected = await server_record(http, seeded_ehr.base_url, first)
        local = (await stored(database, connection_id))[first]
        assert set(local) == set(expected)
        for key, resource in expected.items():
            assert_same(local[key], resource)
        assert proxy.probes("Condition") == 1
        probed = (await client.get(f"/api/admin/connections/{connection_id}")).json()
        assert probed["probed_searches"]["Condition"] == "patient"

        # The answer is remembered: the next pull searches at once, without a probe.
        again = await run_pull(app, client, connection_id, [second])
        assert again["state"] == "succeeded", again["failures"]
        assert proxy.probes("Condition") == 1
        assert ("Condition", {"patient": second}) in proxy.searches, proxy.searches

        # An admin's override wins over the probe: no patient search on Condition here.
        url = f"/api/admin/connections/{connection_id}"
        changed = await client.patch(
            url,
            json={"search_overrides": {"Condition": []}},
            headers={"If-Match": f'W/"{probed["version"]}"'},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["search_overrides"] == {"Condition": []}
        searches_before = len(proxy.searches)
        third = await run_pull(app, client, connection_id, [first])
        assert third["state"] == "completed_with_errors"
        assert [(f["resource_type"], f["reason"]) for f in third["failures"]] == [
            ("Condition", "the EHR offers no patient or subject search on Condition")
        ]
        assert all(kind != "Condition" for kind, _ in proxy.searches[searches_before:])
