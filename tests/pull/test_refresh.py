"""The scheduled refresh: a pull of the linked patients of open cases, per connection."""

from __future__ import annotations

import asyncio

import pytest
import respx
from sqlalchemy import select

from mappings.vocabulary import CaseStatus, Priority, Program
from service.app import create_app
from service.cases.models import Case
from service.db.session import Database
from service.ehr.url_policy import UrlPolicy
from service.links.models import PatientLink
from service.patients.models import Patient
from service.pull.models import PullJob, PullState
from service.pull.runner import REFRESH_ACTOR, PullRunner
from service.settings import Settings
from tests.pull.test_pull_api import CONDITION, MRN, bundle, remote_patient, serve_record


async def link(
    database: Database, connection_id: str, remote_id: str, case: CaseStatus | None
) -> None:
    async with database.transaction() as session:
        patient = Patient(family_name=remote_id)
        session.add(patient)
        await session.flush()
        session.add(
            PatientLink(connection_id=connection_id, patient_id=patient.id, remote_id=remote_id)
        )
        if case is not None:
            session.add(
                Case(
                    patient_id=patient.id,
                    program=Program.nursing,
                    priority=Priority.routine,
                    status=case,
                )
            )


async def jobs(database: Database) -> list[PullJob]:
    async with database.transaction(write=False) as session:
        return list(await session.scalars(select(PullJob).order_by(PullJob.created_at)))


async def test_the_refresh_pulls_the_patients_of_open_cases_once_at_a_time(
    database: Database, connection_id: str
) -> None:
    await link(database, connection_id, "open-1", CaseStatus.active)
    await link(database, connection_id, "open-2", CaseStatus.intake)
    await link(database, connection_id, "closed", CaseStatus.closed)
    await link(database, connection_id, "no-case", None)
    runner = PullRunner(database, UrlPolicy.from_settings(database.settings))
    assert await runner.schedule_refresh() == 1
    [job] = await jobs(database)
    assert job.requested_by == REFRESH_ACTOR
    assert sorted(t["remote_id"] for t in job.targets) == ["open-1", "open-2"]
    # While that refresh is queued, the next one for the connection is skipped.
    assert await runner.schedule_refresh() == 0
    assert len(await jobs(database)) == 1


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"pull_refresh_interval_seconds": 0.05})


async def test_the_runner_refreshes_on_its_schedule(
    settings: Settings, database: Database, connection_id: str
) -> None:
    await link(database, connection_id, "r1", CaseStatus.active)
    with respx.mock(base_url="http://127.0.0.1:9/fhir", assert_all_called=False) as ehr:
        serve_record(ehr, remote_patient(MRN), Condition=bundle(CONDITION))
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            runner: PullRunner = application.state.pull_runner

            async def a_refresh_succeeded() -> None:
                while not [j for j in await jobs(database) if j.state is PullState.succeeded]:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(a_refresh_succeeded(), 30)
            assert runner.settings.pull_refresh_interval_seconds == 0.05
    finished = [j for j in await jobs(database) if j.state is PullState.succeeded]
    assert finished[0].requested_by == REFRESH_ACTOR
    assert finished[0].counts["Condition"] == 1
