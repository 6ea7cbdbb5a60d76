"""Pulls against a real FHIR server on loopback (sekmet-fhir), seeded with a few hundred
patients of 26-45 resources each: the local state is compared with the server resource by
resource, then again after faults injected by a proxy of the tests' own."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from service.app import create_app
from service.db.session import Database
from service.links.models import PatientLink
from service.pull.models import PulledRecord, PullJob, PullState
from service.pull.reader import RECORD_TYPES
from service.pull.runner import PullRunner
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY
from tests.pull.conftest import Key, server_record
from tests.pull.ehr_records import is_pulled_observation
from tests.pull.ehr_server import SeededEhr
from tests.pull.fault_proxy import FaultPlan, FaultProxy

pytestmark = pytest.mark.integration


async def register(client: httpx.AsyncClient, base_url: str, name: str) -> str:
    response = await client.post(
        "/api/admin/connections",
        json={"name": name, "base_url": base_url, "auth_mode": "none"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def run_pull(
    app: FastAPI, client: httpx.AsyncClient, connection_id: str, ids: list[str]
) -> dict[str, Any]:
    response = await client.post(
        f"/api/connections/{connection_id}/pulls",
        json={"patients": [{"remote_id": remote_id} for remote_id in ids]},
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/pulls/{response.json()['id']}"
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), timeout=600)
    job = await client.get(response.headers["Location"])
    assert job.status_code == 200
    body: dict[str, Any] = job.json()
    assert body["patients_done"] == body["patients_total"] == len(ids)
    return body


async def stored(database: Database, connection_id: str) -> dict[str, dict[Key, PulledRecord]]:
    """The connection's pulled records, by remote patient."""
    async with database.transaction(write=False) as session:
        rows = await session.scalars(
            select(PulledRecord).where(PulledRecord.connection_id == connection_id)
        )
        by_patient: dict[str, dict[Key, PulledRecord]] = {}
        for row in rows:
            assert row.remote_patient_id is not None
            by_patient.setdefault(row.remote_patient_id, {})[(row.resource_type, row.remote_id)] = (
                row
            )
    return by_patient


async def truth(ehr: SeededEhr, ids: list[str]) -> dict[str, dict[Key, Any]]:
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=60) as http:

        async def one(remote_id: str) -> tuple[str, dict[Key, Any]]:
            async with limit:
                return remote_id, await server_record(http, ehr.base_url, remote_id)

        return dict(await asyncio.gather(*(one(remote_id) for remote_id in ids)))


def assert_same(record: PulledRecord, resource: dict[str, Any]) -> None:
    assert orjson.loads(record.content) == resource
    assert record.remote_version_id == resource["meta"]["versionId"]


async def test_a_pull_of_every_patient_matches_the_server_resource_by_resource(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    ids = seeded_ehr.patient_ids
    connection_id = await register(client, seeded_ehr.base_url, "sekmet")
    job = await run_pull(app, client, connection_id, ids)
    assert job["state"] == "succeeded", job["failures"][:5]
    assert job["failures"] == []

    expected = await truth(seeded_ehr, ids)
    local = await stored(database, connection_id)
    assert set(local) == set(ids)
    sizes: Counter[str] = Counter()
    for remote_id in ids:
        assert set(local[remote_id]) == set(expected[remote_id]), remote_id
        for key, resource in expected[remote_id].items():
            assert_same(local[remote_id][key], resource)
            sizes[key[0]] += 1
    assert min(len(r) for r in expected.values()) >= 20
    assert job["counts"] == dict(sizes)
    # The pull left the imaging Observations alone (not a category of the default scope).
    assert all(
        "imaging" not in row.content.decode()
        for record in local.values()
        for row in record.values()
        if row.resource_type == "Observation"
    )
    # One local patient and one link per remote patient, all records pointing to it.
    async with database.transaction(write=False) as session:
        links = {
            link.remote_id: link.patient_id
            for link in await session.scalars(
                select(PatientLink).where(PatientLink.connection_id == connection_id)
            )
        }
    assert set(links) == set(ids)
    assert len(set(links.values())) == len(ids)
    for remote_id in ids:
        assert {row.patient_id for row in local[remote_id].values()} == {links[remote_id]}


async def test_a_repeat_pull_reads_only_what_changed_since_the_last_one(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    remote_id = seeded_ehr.patient_ids[0]
    connection_id = await register(client, seeded_ehr.base_url, "sekmet incremental")
    first = await run_pull(app, client, connection_id, [remote_id])
    assert first["state"] == "succeeded"
    async with httpx.AsyncClient(base_url=seeded_ehr.base_url, timeout=30) as http:
        conditions = (await http.get("Condition", params={"patient": remote_id})).json()
        condition = conditions["entry"][0]["resource"]
        condition["note"] = [{"text": "changed on the EHR"}]
        changed = await http.put(f"Condition/{condition['id']}", json=condition)
        assert changed.status_code == 200
    second = await run_pull(app, client, connection_id, [remote_id])
    assert second["state"] == "succeeded"
    # Only the changed Condition came back from the searches; the Patient is always read, and
    # Goals and CareTeams (no search on sekmet) are read by the CarePlans' references.
    assert second["counts"] == {
        "Patient": 1,
        "Condition": 1,
        "Goal": 2,
        "CareTeam": 1,
    } | dict.fromkeys(
        (
            "Encounter",
            "Observation",
            "AllergyIntolerance",
            "MedicationRequest",
            "CarePlan",
            "ServiceRequest",
            "Procedure",
        ),
        0,
    )
    local = (await stored(database, connection_id))[remote_id]
    expected = (await truth(seeded_ehr, [remote_id]))[remote_id]
    assert set(local) == set(expected)
    for key, resource in expected.items():
        assert_same(local[key], resource)
    assert orjson.loads(local[("Condition", condition["id"])].content)["note"] == [
        {"text": "changed on the EHR"}
    ]


async def test_faults_mid_pull_lose_nothing_and_duplicate_nothing(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    ids = seeded_ehr.patient_ids[:40]
    plan = FaultPlan(enabled=False)
    with FaultProxy(seeded_ehr.base_url, plan) as proxy:
        connection_id = await register(client, proxy.base_url, "sekmet behind a faulty proxy")
        plan.enabled = True
        faulty = await run_pull(app, client, connection_id, ids)
        assert {
            "rate-limited",
            "unavailable",
            "timeout",
            "truncated",
            "garbage",
            "everything-loop",
            "loop",
        } <= set(plan.injected), plan.injected
        expected = await truth(seeded_ehr, ids)
        local = await stored(database, connection_id)
        # What failed is reported with its reason; every type that did not fail is complete.
        failed = {(f["target"], f["resource_type"]) for f in faulty["failures"]}
        assert all(f["reason"] for f in faulty["failures"])
        # A loop in $everything sends the patient to type-by-type reads; one in a search is the
        # type's failure, every time.
        loops = [f for f in faulty["failures"] if "paging loop" in f["reason"]]
        assert {f["resource_type"] for f in loops} == {"Observation"}, faulty["failures"]
        assert len(loops) == plan.injected["loop"], faulty["failures"]
        assert faulty["state"] == "completed_with_errors"
        for remote_id in ids:
            got = local.get(remote_id, {})
            for key, row in got.items():
                assert_same(row, expected[remote_id][key])  # nothing stored is wrong
            for kind in {k for k, _ in expected[remote_id]}:
                if (f"Patient/{remote_id}", kind) in failed:
                    continue
                if (f"Patient/{remote_id}", "Patient") in failed:
                    assert got == {}  # the Patient could not be read: nothing was stored
                    continue
                assert {k for k in got if k[0] == kind} == {
                    k for k in expected[remote_id] if k[0] == kind
                }, (remote_id, kind, [f for f in faulty["failures"] if remote_id in f["target"]])

        # The next pull, without faults, converges: nothing lost, nothing twice.
        plan.enabled = False
        again = await run_pull(app, client, connection_id, ids)
    assert again["state"] == "succeeded", again["failures"]
    local = await stored(database, connection_id)
    for remote_id in ids:
        assert set(local[remote_id]) == set(expected[remote_id])
        for key, resource in expected[remote_id].items():
            assert_same(local[remote_id][key], resource)
    async with database.transaction(write=False) as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(PulledRecord)
            .where(PulledRecord.connection_id == connection_id)
        )
    assert rows == sum(len(record) for record in expected.values())


async def test_a_group_is_pulled_with_bulk_data_and_again_since_its_transaction_time(
    app: FastAPI, client: httpx.AsyncClient, database: Database, seeded_ehr: SeededEhr
) -> None:
    members = seeded_ehr.patient_ids[:10]
    async with httpx.AsyncClient(base_url=seeded_ehr.base_url, timeout=30) as http:
        group = await http.post(
            "Group",
            json={
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "member": [{"entity": {"reference": f"Patient/{p}"}} for p in members],
            },
        )
        group_id = group.json()["id"]
    connection_id = await register(client, seeded_ehr.base_url, "sekmet bulk")
    started = await client.post(
        f"/api/connections/{connection_id}/pulls", json={"group": {"id": group_id}}
    )
    assert started.status_code == 202, started.text
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), timeout=300)
    job = (await client.get(f"/api/pulls/{started.json()['id']}")).json()
    assert job["state"] == "succeeded", job["failures"]
    assert job["patients_done"] == len(members)

    # The export holds the compartment of each member, as far as the connection's pull scope
    # reaches: Observations of its categories only (`_typeFilter`).
    wanted = {"Patient", *RECORD_TYPES}
    local = await stored(database, connection_id)
    async with httpx.AsyncClient(timeout=60) as http:
        for remote_id in members:
            bundle = (
                await http.get(f"{seeded_ehr.base_url}/Patient/{remote_id}/$everything")
            ).json()
            expected = {
                (e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]
                for e in bundle["entry"]
                if e["resource"]["resourceType"] in wanted
                and (
                    e["resource"]["resourceType"] != "Observation"
                    or is_pulled_observation(e["resource"])
                )
                # $everything also names other patients the record refers to
                and not (
                    e["resource"]["resourceType"] == "Patient" and e["resource"]["id"] != remote_id
                )
            }
            assert set(local[remote_id]) == set(expected), remote_id
            for key, resource in expected.items():
                assert_same(local[remote_id][key], resource)
    async with database.transaction(write=False) as session:
        links = set(
            await session.scalars(
                select(PatientLink.remote_id).where(PatientLink.connection_id == connection_id)
            )
        )
    assert links == set(members)

    # The next export asks for what changed since the first one's transactionTime.
    async with httpx.AsyncClient(base_url=seeded_ehr.base_url, timeout=30) as http:
        first = members[0]
        conditions = (await http.get("Condition", params={"patient": first})).json()
        condition = conditions["entry"][0]["resource"]
        condition["note"] = [{"text": "changed after the export"}]
        assert (await http.put(f"Condition/{condition['id']}", json=condition)).status_code == 200
    again = await client.post(
        f"/api/connections/{connection_id}/pulls", json={"group": {"id": group_id}}
    )
    await asyncio.wait_for(runner.wait_idle(), timeout=300)
    job = (await client.get(f"/api/pulls/{again.json()['id']}")).json()
    assert job["state"] == "succeeded", job["failures"]
    assert job["counts"] == {"Condition": 1}
    record = (await stored(database, connection_id))[first][("Condition", condition["id"])]
    assert orjson.loads(record.content)["note"] == [{"text": "changed after the export"}]


async def test_a_pull_interrupted_by_a_restart_is_rerun_and_converges(
    settings: Settings, database: Database, seeded_ehr: SeededEhr
) -> None:
    ids = seeded_ehr.patient_ids[:60]

    def api(application: FastAPI) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://testserver",
            headers={"X-API-Key": BOOTSTRAP_KEY},
        )

    first = create_app(settings)
    async with first.router.lifespan_context(first), api(first) as client:
        connection_id = await register(client, seeded_ehr.base_url, "sekmet restart")
        started = await client.post(
            f"/api/connections/{connection_id}/pulls",
            json={"patients": [{"remote_id": remote_id} for remote_id in ids]},
        )
        job_url = started.headers["Location"]

        async def some_patients_done() -> None:
            while (await client.get(job_url)).json()["patients_done"] < 5:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(some_patients_done(), 120)
    # The process stopped in the middle of the pull and gave the job back.
    async with database.transaction(write=False) as session:
        interrupted = await session.get(PullJob, job_url.rsplit("/", 1)[1])
        assert interrupted is not None
        assert interrupted.state is PullState.queued
        assert interrupted.lease_token is None
        assert interrupted.patients_done < len(ids)

    second = create_app(settings)
    async with second.router.lifespan_context(second), api(second) as client:
        await asyncio.wait_for(second.state.pull_runner.wait_idle(), 300)
        job = (await client.get(job_url)).json()
    assert job["state"] == "succeeded", job["failures"]
    expected = await truth(seeded_ehr, ids)
    local = await stored(database, connection_id)
    for remote_id in ids:
        assert set(local[remote_id]) == set(expected[remote_id])
        for key, resource in expected[remote_id].items():
            assert_same(local[remote_id][key], resource)
    async with database.transaction(write=False) as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(PulledRecord)
            .where(PulledRecord.connection_id == connection_id)
        )
        links = await session.scalar(
            select(func.count())
            .select_from(PatientLink)
            .where(PatientLink.connection_id == connection_id)
        )
    assert rows == sum(len(record) for record in expected.values())
    assert links == len(ids)
