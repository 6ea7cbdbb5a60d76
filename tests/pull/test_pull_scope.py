"""What a pull reads and how the planner reads it, against sekmet-fhir on loopback: the default
scope brings vital signs, labs and procedures; a connection's own scope binds per-patient and
Bulk pulls alike; the pulled records are readable with their content, as the EHR sent it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mappings import fhir_json
from service.db.session import Database
from service.pull.models import PulledRecord
from service.pull.reader import RECORD_TYPES
from service.pull.runner import PullRunner
from tests.pull.conftest import Key
from tests.pull.ehr_server import SeededEhr
from tests.pull.test_pull_sekmet import register, run_pull, stored

pytestmark = pytest.mark.integration


def categories(record: dict[Key, PulledRecord]) -> set[str]:
    return {
        coding["code"]
        for (kind, _), row in record.items()
        if kind == "Observation"
        for concept in fhir_json.loads(row.content).get("category") or []
        for coding in concept.get("coding") or []
    }


def kinds(record: dict[Key, PulledRecord]) -> set[str]:
    return {kind for kind, _ in record}


async def set_scope(client: httpx.AsyncClient, connection_id: str, scope: dict[str, Any]) -> None:
    url = f"/api/admin/connections/{connection_id}"
    version = (await client.get(url)).json()["version"]
    changed = await client.patch(
        url, json={"pull_scope": scope}, headers={"If-Match": f'W/"{version}"'}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["effective_pull_scope"] == scope


async def test_a_patient_pull_reads_vital_signs_labs_and_procedures_by_default(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    remote_id = seeded_ehr.patient_ids[1]
    connection_id = await register(client, seeded_ehr.base_url, "sekmet default scope")
    job = await run_pull(app, client, connection_id, [remote_id])
    assert job["state"] == "succeeded", job["failures"]
    local = (await stored(database, connection_id))[remote_id]
    assert {"vital-signs", "laboratory"} <= categories(local)
    assert "imaging" not in categories(local)  # not a category of the default scope
    assert "Procedure" in kinds(local)

    # The planner's summary shows them, each with its source.
    [patient_id] = {row.patient_id for row in local.values()}
    summary = (await client.get(f"/api/patients/{patient_id}/summary")).json()
    assert {lab["text"]: lab["value"] for lab in summary["labs"]} == {
        "Potassium": "4.1 mmol/L",
        "Hemoglobin": "13.2 g/dL",
    }
    assert {v["text"] for v in summary["vital_signs"]} == {f"heart rate {n}" for n in range(4)}
    assert {v["source"]["connection_name"] for v in summary["vital_signs"]} == {
        "sekmet default scope"
    }


async def test_the_pulled_records_are_readable_with_their_content_and_the_read_is_audited(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    remote_id = seeded_ehr.patient_ids[2]
    connection_id = await register(client, seeded_ehr.base_url, "sekmet records")
    await run_pull(app, client, connection_id, [remote_id])
    local = (await stored(database, connection_id))[remote_id]
    [patient_id] = {row.patient_id for row in local.values()}
    audited_before = len(
        (await client.get("/api/admin/audit-events", params={"patient": patient_id})).json()[
            "items"
        ]
    )

    response = await client.get(
        f"/api/patients/{patient_id}/records", params={"type": "Observation", "content": "true"}
    )
    assert response.status_code == 200, response.text
    records = fhir_json.loads(response.content)
    assert {r["remote_id"] for r in records} == {
        remote for kind, remote in local if kind == "Observation"
    }
    async with httpx.AsyncClient(base_url=seeded_ehr.base_url, timeout=30) as http:
        for record in records:
            assert record["connection_id"] == connection_id
            assert record["connection_name"] == "sekmet records"
            assert record["pulled_at"]
            on_the_ehr = fhir_json.loads(
                (await http.get(f"Observation/{record['remote_id']}")).content
            )
            # The resource as the EHR holds it, decimals with their digits.
            assert record["content"] == on_the_ehr
            assert record["remote_version_id"] == on_the_ehr["meta"]["versionId"]
            assert record["remote_last_updated"] is not None
    # As stored, byte for byte: never parsed into floats and written again.
    for (kind, _), row in local.items():
        if kind == "Observation":
            assert row.content in response.content
    potassium = next(r for r in records if r["content"]["code"]["text"] == "Potassium")
    assert potassium["content"]["valueQuantity"]["value"] == Decimal("4.1")

    # Without `content`, the list names the records only.
    listed = (await client.get(f"/api/patients/{patient_id}/records")).json()
    assert {(r["resource_type"], r["remote_id"]) for r in listed} == set(local)
    assert all("content" not in r for r in listed)

    # Each read of the patient's records is a disclosure in the audit trail.
    trail = (await client.get("/api/admin/audit-events", params={"patient": patient_id})).json()
    assert len(trail["items"]) == audited_before + 2


async def test_a_scope_without_labs_leaves_them_out_of_patient_and_bulk_pulls(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    by_patient, in_group = seeded_ehr.patient_ids[3], seeded_ehr.patient_ids[4]
    connection_id = await register(client, seeded_ehr.base_url, "sekmet without labs")
    await set_scope(
        client,
        connection_id,
        {"types": list(RECORD_TYPES), "observation_categories": ["vital-signs", "survey"]},
    )
    job = await run_pull(app, client, connection_id, [by_patient])
    assert job["state"] == "succeeded", job["failures"]

    async with httpx.AsyncClient(base_url=seeded_ehr.base_url, timeout=30) as http:
        group = await http.post(
            "Group",
            json={
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "member": [{"entity": {"reference": f"Patient/{in_group}"}}],
            },
        )
    started = await client.post(
        f"/api/connections/{connection_id}/pulls", json={"group": {"id": group.json()["id"]}}
    )
    assert started.status_code == 202, started.text
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), timeout=300)
    bulk = (await client.get(f"/api/pulls/{started.json()['id']}")).json()
    assert bulk["state"] == "succeeded", bulk["failures"]

    local = await stored(database, connection_id)
    for remote_id in (by_patient, in_group):
        assert categories(local[remote_id]) == {"vital-signs", "survey"}, remote_id
        assert "Procedure" in kinds(local[remote_id]), remote_id


async def test_a_pull_where_two_patients_of_three_succeed_completed_with_errors(
    app: FastAPI, client: httpx.AsyncClient, seeded_ehr: SeededEhr
) -> None:
    found = seeded_ehr.patient_ids[5:7]
    connection_id = await register(client, seeded_ehr.base_url, "sekmet two of three")
    job = await run_pull(app, client, connection_id, [*found, "no-such-patient"])
    assert job["state"] == "completed_with_errors"
    assert job["counts"]["Patient"] == 2
    assert {(f["target"], f["resource_type"]) for f in job["failures"]} == {
        ("Patient/no-such-patient", "Patient")
    }
