"""The in-process runner of pull jobs, started in the app lifespan.

Jobs are rows: a POST queues one and wakes the runner; the runner claims queued rows
(`queued -> running` by a guarded UPDATE, so two runners never run one job) and pulls the
job's patients, at most `pull_patients_per_connection` at a time per connection across all
jobs. Progress is written after each patient. A cancel marks the row and stops the task.

When `pull_refresh_interval_seconds` is set, the runner also queues, on that schedule, one
pull per connection of the linked patients of open cases (skipped while the previous refresh of
that connection is still queued or running).

After a restart, jobs left `running` are queued again and rerun from the start: records are
upserted and cursors are per type, so a rerun neither duplicates anything nor reads again
what was already read in full. (One runner per database: a second replica would requeue the
first one's running jobs. A lease column is the way to run several.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from service.connections.fhir_clients import backend_services_grant, fhir_client_for
from service.connections.models import AuthMode, Connection
from service.connections.service import load_connection, stored_capabilities
from service.db.base import utcnow
from service.db.session import Database
from service.ehr.url_policy import UrlPolicy
from service.errors import CaseBridgeError
from service.fhir_auth.scopes import Interaction, parse_scopes
from service.pull import repository
from service.pull.bulk import BulkExport
from service.pull.bulk_pull import pull_group
from service.pull.models import PullJob, PullState, final_state
from service.pull.reader import RECORD_TYPES, Failure, PullTarget
from service.pull.service import pull_patient_record
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens

log = logging.getLogger(__name__)

MAX_RECORDED_FAILURES = 500
REFRESH_ACTOR = "schedule:refresh"


def scopes_cover_the_record(connection: Connection) -> bool:
    """Whether the connection's scopes let it read every type of the record (an open sandbox,
    with no authorization, does)."""
    if connection.auth_mode is AuthMode.none:
        return True
    scopes = parse_scopes(" ".join(connection.scopes), strict=False)
    return all(
        any(s.allows(t, Interaction.read) and s.allows(t, Interaction.search) for s in scopes)
        for t in ("Patient", *RECORD_TYPES)
    )


class PullRunner:
    def __init__(self, database: Database, policy: UrlPolicy) -> None:
        self.database = database
        self.settings = database.settings
        self.policy = policy
        assert self.settings.encryption_key is not None
        self.box = SecretBox(self.settings.encryption_key.get_secret_value())
        # Its own token cache: jobs run outside any request.
        self.tokens = BackendServicesTokens(
            policy=policy, timeout_seconds=self.settings.ehr_timeout_seconds
        )
        self._wake = asyncio.Event()
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._per_connection: dict[str, asyncio.Semaphore] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        async with self.database.transaction() as session:
            requeued = await repository.requeue_running_jobs(session)
        if requeued:
            log.warning("requeued %d pull jobs interrupted by a restart", requeued)
        self._loop_task = asyncio.create_task(self._loop(), name="pull-runner")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        # Jobs stopped by a shutdown stay `running`: the next start requeues and reruns them.
        self._closing = True
        tasks = [*self._jobs.values(), *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stop_job(self, job_id: str) -> None:
        """Stop a job running in this process (its row was already marked cancelled)."""
        task = self._jobs.get(job_id)
        if task is not None:
            task.cancel()

    async def wait_idle(self) -> None:
        """Until no job is queued or running (tests and benchmarks: one runner per database)."""
        while True:
            self.wake()
            await asyncio.sleep(0)
            async with self.database.transaction(write=False) as session:
                unfinished = await repository.unfinished_job_count(session)
            if not unfinished and not self._jobs:
                return
            await asyncio.sleep(0.02)

    async def _loop(self) -> None:
        interval = self.settings.pull_refresh_interval_seconds
        next_refresh = time.monotonic() + interval
        while True:
            if interval and time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + interval
                try:
                    await self.schedule_refresh()
                except Exception:
                    log.exception("the scheduled refresh could not queue its pulls")
            try:
                await self._start_queued()
            except Exception:
                log.exception("the pull runner could not start queued jobs")
            wait = self.settings.pull_poll_seconds
            if interval:
                wait = max(0.0, min(wait, next_refresh - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def schedule_refresh(self) -> int:
        """Queue one pull per connection of the linked patients of open cases; a connection
        whose previous refresh is still queued or running is skipped. Returns jobs queued."""
        queued = 0
        async with self.database.transaction() as session:
            for connection_id, remote_ids in (await repository.refresh_targets(session)).items():
                if await repository.has_unfinished_job(session, connection_id, REFRESH_ACTOR):
                    continue
                session.add(
                    PullJob(
                        connection_id=connection_id,
                        state=PullState.queued,
                        targets=[{"remote_id": remote_id} for remote_id in remote_ids],
                        requested_by=REFRESH_ACTOR,
                        counts={},
                        failures=[],
                    )
                )
                queued += 1
        return queued

    async def _start_queued(self) -> None:
        async with self.database.transaction(write=False) as session:
            job_ids = await repository.queued_job_ids(session, list(self._jobs))
        for job_id in job_ids:
            async with self.database.transaction() as session:
                claimed = await repository.claim_job(session, job_id)
            if claimed:
                task = asyncio.create_task(self._run(job_id), name=f"pull-{job_id}")
                self._jobs[job_id] = task
                task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for job_id, running in list(self._jobs.items()):
            if running is task:
                del self._jobs[job_id]

    async def _run(self, job_id: str) -> None:
        try:
            await self._run_job(job_id)
        except asyncio.CancelledError:
            if not self._closing:
                await self._finish(job_id, PullState.cancelled)
            raise
        except Exception as exc:
            log.exception("pull job %s failed", job_id)
            await self._finish(job_id, PullState.failed, failure=f"the job failed: {exc!r}")

    async def _run_job(self, job_id: str) -> None:
        async with self.database.transaction(write=False) as session:
            job = await repository.get_job(session, job_id)
            assert job is not None
            connection = await load_connection(session, job.connection_id)
        connection_id = connection.id
        capabilities = stored_capabilities(connection)
        targets = [PullTarget(**target) for target in job.targets]
        limit = self._per_connection.setdefault(
            connection_id, asyncio.Semaphore(self.settings.pull_patients_per_connection)
        )
        try:
            client = fhir_client_for(
                connection,
                settings=self.settings,
                box=self.box,
                tokens=self.tokens,
                policy=self.policy,
            )
        except CaseBridgeError as exc:
            await self._finish(job_id, PullState.failed, failure=exc.detail)
            return

        async def pull_one(target: PullTarget) -> None:
            async with limit:
                result = await pull_patient_record(
                    self.database,
                    client,
                    connection_id,
                    target,
                    actor=f"pull:{job_id}",
                    capabilities=capabilities,
                    observation_categories=self.settings.pull_observation_categories,
                    may_use_everything=scopes_cover_the_record(connection),
                )
            await self._record(job_id, target.label(), result.counts, result.failures, 1)

        async with client:
            if job.bulk_group_id is not None:
                provider = (
                    self.tokens.provider(backend_services_grant(connection, self.box))
                    if connection.auth_mode is AuthMode.backend_services
                    else None
                )
                export = BulkExport(
                    client,
                    self.policy,
                    token_provider=provider,
                    timeout_seconds=self.settings.ehr_timeout_seconds,
                )

                async def progress(note: str | None) -> None:
                    async with self.database.transaction() as session:
                        await repository.note_progress(session, job_id, note)

                async with limit:
                    bulk = await pull_group(
                        self.database,
                        export,
                        connection_id,
                        job.bulk_group_id,
                        types=job.bulk_types,
                        actor=f"pull:{job_id}",
                        progress=progress,
                    )
                label = f"Group/{job.bulk_group_id}"
                await self._record(
                    job_id, label, bulk.counts, bulk.failures, bulk.counts.get("Patient", 0)
                )
            else:
                await asyncio.gather(*(pull_one(target) for target in targets))
        await self._finish(job_id, None)

    async def _record(
        self,
        job_id: str,
        target: str,
        counts: dict[str, int],
        failures: list[Failure],
        patients_done: int,
    ) -> None:
        async with self.database.transaction() as session:
            job = await session.get(PullJob, job_id, with_for_update=True)
            assert job is not None
            job.patients_done += patients_done
            merged = dict(job.counts)
            for resource_type, count in counts.items():
                merged[resource_type] = merged.get(resource_type, 0) + count
            job.counts = merged
            room = MAX_RECORDED_FAILURES - len(job.failures)
            job.failures = job.failures + [
                {
                    "target": target,
                    "resource_type": failure.resource_type,
                    "remote_id": failure.remote_id,
                    "reason": failure.reason,
                }
                for failure in failures[: max(room, 0)]
            ]

    async def _finish(
        self, job_id: str, state: PullState | None, *, failure: str | None = None
    ) -> None:
        """Set the final state; None means as the failures and counts recorded say
        (`final_state`)."""
        async with self.database.transaction() as session:
            job = await session.get(PullJob, job_id, with_for_update=True)
            if job is None or job.state not in (PullState.running, PullState.queued):
                return
            if failure is not None:
                job.failures = [
                    *job.failures,
                    {"target": None, "resource_type": None, "remote_id": None, "reason": failure},
                ]
            if state is None:
                state = final_state(job.failures, job.counts)
            if job.cancel_requested:
                state = PullState.cancelled
            job.state = state
            job.finished_at = utcnow()
