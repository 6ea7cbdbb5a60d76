"""Two pull runner processes on one PostgreSQL, against a real FHIR server on loopback
(sekmet-fhir): one is killed (SIGKILL) in the middle of its pull, and the other takes its job
over when the lease runs out, resumes it and completes it, with every record stored once.

Waits are on conditions read from the database; their time limits only guard against a hang."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from service.app import create_app
from service.db.session import Database
from service.links.models import PatientLink
from service.patients.models import Patient
from service.pull.models import PulledRecord, PullJob, PullState
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY
from tests.pull.ehr_server import SeededEhr
from tests.pull.test_pull_sekmet import assert_same, register, stored, truth

pytestmark = pytest.mark.integration

PATIENTS_PER_JOB = 30
LEASE_SECONDS = 3


def start_runner(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    assert settings.encryption_key is not None
    env = os.environ | {
        "CASEBRIDGE_DATABASE_URL": settings.database_url,
        "CASEBRIDGE_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        "CASEBRIDGE_ALLOW_INSECURE_HTTP": "true",
        "CASEBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "CASEBRIDGE_PULL_LEASE_SECONDS": str(LEASE_SECONDS),
        "CASEBRIDGE_PULL_POLL_SECONDS": "0.2",
        # One job each, two patients at a time: both runners are busy when one is killed.
        "CASEBRIDGE_PULL_JOBS_PER_RUNNER": "1",
        "CASEBRIDGE_PULL_PATIENTS_PER_CONNECTION": "2",
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.pull.worker"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def runners(settings: Settings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


async def job_rows(database: Database, job_ids: list[str]) -> list[PullJob]:
    async with database.transaction(write=False) as session:
        rows = await session.scalars(select(PullJob).where(PullJob.id.in_(job_ids)))
        return sorted(rows, key=lambda job: job_ids.index(job.id))


async def until(condition_name: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Poll `check()` until it is true; the timeout only guards against a hang."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting: {condition_name}")
        await asyncio.sleep(0.1)


async def test_a_killed_runners_job_is_taken_over_and_completes_once(
    settings: Settings,
    database: Database,
    seeded_ehr: SeededEhr,
    is_postgres: bool,
    runners: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    if not is_postgres:
        pytest.skip(
            "SQLite is the embedded database of one process; several runner processes are a "
            "PostgreSQL deployment (set CASEBRIDGE_TEST_DATABASE_URL)"
        )
    ids = seeded_ehr.patient_ids[: 2 * PATIENTS_PER_JOB]
    batches = [ids[:PATIENTS_PER_JOB], ids[PATIENTS_PER_JOB:]]
    # The API process runs no runner: the two standalone processes do all the pulling.
    api = create_app(settings.model_copy(update={"pull_runner_enabled": False}))
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api),
            base_url="http://testserver",
            headers={"X-API-Key": BOOTSTRAP_KEY},
        ) as client,
    ):
        connection_id = await register(client, seeded_ehr.base_url, "sekmet two runners")
        job_ids = []
        for batch in batches:
            started = await client.post(
                f"/api/connections/{connection_id}/pulls",
                json={"patients": [{"remote_id": remote_id} for remote_id in batch]},
            )
            assert started.status_code == 202, started.text
            job_ids.append(started.json()["id"])

    runners.append(start_runner(settings, tmp_path / "runner-1.log"))
    runners.append(start_runner(settings, tmp_path / "runner-2.log"))

    async def both_running_with_progress() -> bool:
        jobs = await job_rows(database, job_ids)
        return all(
            job.state is PullState.running and 2 <= job.patients_done < PATIENTS_PER_JOB
            for job in jobs
        )

    await until("both runners pulling", both_running_with_progress, 180)
    before_kill = {job.id: job.lease_token for job in await job_rows(database, job_ids)}
    assert len(set(before_kill.values())) == 2  # one job per runner, each under its own lease

    victim, survivor = runners
    victim.kill()  # SIGKILL: no shutdown, no lease given back
    assert victim.wait(timeout=20) == -9

    async def all_finished() -> bool:
        jobs = await job_rows(database, job_ids)
        return all(job.state not in (PullState.queued, PullState.running) for job in jobs)

    await until("the survivor finishing both jobs", all_finished, 600)
    assert survivor.poll() is None  # still alive: it did the rest of both jobs
    jobs = await job_rows(database, job_ids)
    for job in jobs:
        assert job.state is PullState.succeeded, job.failures
        # Resumed, not restarted: each target recorded once, the count not doubled.
        assert job.patients_done == PATIENTS_PER_JOB
        assert sorted(job.done_targets) == sorted(set(job.done_targets))
        assert len(job.done_targets) == PATIENTS_PER_JOB

    # Every record stored once, and as the server holds it.
    expected = await truth(seeded_ehr, ids)
    local = await stored(database, connection_id)
    assert set(local) == set(ids)
    for remote_id in ids:
        assert set(local[remote_id]) == set(expected[remote_id]), remote_id
        for key, resource in expected[remote_id].items():
            assert_same(local[remote_id][key], resource)
    async with database.transaction(write=False) as session:
        records = await session.scalar(
            select(func.count())
            .select_from(PulledRecord)
            .where(PulledRecord.connection_id == connection_id)
        )
        links = await session.scalar(
            select(func.count())
            .select_from(PatientLink)
            .where(PatientLink.connection_id == connection_id)
        )
        patients = await session.scalar(select(func.count()).select_from(Patient))
    assert records == sum(len(record) for record in expected.values())
    assert links == len(ids)  # one link per remote patient
    assert patients == len(ids)  # and one local patient: none made twice
