"""Pull job leases and the refresh schedule, on the database alone (both SQLite and
PostgreSQL): a job is held by one runner, an expired lease is taken over, a lost lease stops
its runner's writes, a stopping runner gives its jobs back, and the refresh runs once per
interval whichever runners ask."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from mappings.vocabulary import CaseStatus
from service.db.base import utcnow
from service.db.session import Database
from service.ehr.url_policy import UrlPolicy
from service.pull import repository
from service.pull.models import PullJob, PullSchedule, PullState
from service.pull.runner import LeaseLost, PullRunner
from tests.pull.test_refresh import jobs, link


async def queue(database: Database, connection_id: str, count: int = 1) -> list[str]:
    ids = []
    async with database.transaction() as session:
        for index in range(count):
            job = PullJob(
                connection_id=connection_id,
                state=PullState.queued,
                targets=[{"remote_id": f"r{index}"}],
                requested_by="test",
                counts={},
                failures=[],
            )
            session.add(job)
            await session.flush()
            ids.append(job.id)
    return ids


async def claim(database: Database, limit: int = 10, now: dt.datetime | None = None) -> list[str]:
    async with database.transaction() as session:
        _, ids = await repository.claim_jobs(session, limit, 30.0, now)
        return ids


async def test_a_job_is_held_by_one_runner_and_an_expired_lease_is_taken_over(
    database: Database, connection_id: str
) -> None:
    [job_id] = await queue(database, connection_id)
    assert await claim(database) == [job_id]
    assert await claim(database) == []  # held
    later = utcnow() + dt.timedelta(seconds=31)
    assert await claim(database, now=later) == [job_id]  # its runner died


async def test_claims_respect_the_runners_room(database: Database, connection_id: str) -> None:
    await queue(database, connection_id, 3)
    assert len(await claim(database, limit=2)) == 2
    assert len(await claim(database, limit=2)) == 1


async def test_a_runner_whose_lease_was_taken_over_writes_nothing_more(
    database: Database, connection_id: str
) -> None:
    [job_id] = await queue(database, connection_id)
    runner = PullRunner(database, UrlPolicy.from_settings(database.settings))
    async with database.transaction() as session:
        old_token, _ = await repository.claim_jobs(session, 1, 30.0)
    async with database.transaction() as session:
        new_token, taken = await repository.claim_jobs(
            session, 1, 30.0, utcnow() + dt.timedelta(seconds=31)
        )
    assert taken == [job_id]
    with pytest.raises(LeaseLost):
        await runner._record(job_id, old_token, "Patient/r0", {"Condition": 1}, [], 1)
    await runner._finish(job_id, old_token, None)
    async with database.transaction() as session:
        assert await repository.renew_job(session, job_id, old_token, 30.0) is None
        assert await repository.renew_job(session, job_id, new_token, 30.0) is False
    await runner._record(job_id, new_token, "Patient/r0", {"Condition": 1}, [], 1)
    await runner._finish(job_id, new_token, None)
    [job] = await jobs(database)
    assert (job.state, job.patients_done, job.done_targets) == (
        PullState.succeeded,
        1,
        ["Patient/r0"],
    )
    assert job.lease_token is None


async def test_a_given_back_job_is_queued_again_at_once(
    database: Database, connection_id: str
) -> None:
    [job_id] = await queue(database, connection_id)
    async with database.transaction() as session:
        token, _ = await repository.claim_jobs(session, 1, 30.0)
        await repository.release_job(session, job_id, token)
    assert await claim(database) == [job_id]


async def test_the_refresh_runs_once_per_interval_across_runners(
    database: Database, connection_id: str
) -> None:
    await link(database, connection_id, "open-1", CaseStatus.active)
    settings = database.settings.model_copy(update={"pull_refresh_interval_seconds": 600})
    policy = UrlPolicy.from_settings(settings)
    runners = [PullRunner(database, policy) for _ in range(3)]
    for runner in runners:
        runner.settings = settings
    # The first look makes the schedule, due one interval later.
    assert [await runner.refresh_if_due() for runner in runners] == [None, None, None]

    async def make_due() -> None:
        async with database.transaction() as session:
            await session.execute(
                update(PullSchedule).values(next_run_at=utcnow() - dt.timedelta(seconds=1))
            )

    await make_due()
    assert [await runner.refresh_if_due() for runner in runners] == [1, None, None]
    [job] = await jobs(database)
    async with database.transaction() as session:
        await session.execute(
            update(PullJob).where(PullJob.id == job.id).values(state=PullState.succeeded)
        )
    await make_due()
    assert sorted(
        [await runner.refresh_if_due() for runner in reversed(runners)], key=str
    ) == sorted([1, None, None], key=str)
    assert len(await jobs(database)) == 2
