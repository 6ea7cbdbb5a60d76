"""The pull runner, started in the app lifespan (or `casebridge pull-runner`): any number of
them, in any replicas and workers, share the jobs of one database.

Jobs are rows: a POST queues one and wakes the runner of its process; every runner polls for
due jobs. A runner claims jobs with a lease, like the push claims (`UPDATE ... WHERE id IN
(SELECT ... FOR UPDATE SKIP LOCKED)`), at most `pull_jobs_per_runner` at a time, and renews the
lease at a third of its length while it works. A job whose lease runs out (its runner died) is
due again and taken over by any runner, which resumes after the targets already recorded:
records are upserted and cursors are per type, so a target pulled twice (the dead runner's
last, unrecorded one) never stores anything twice. A runner that shuts down gives its jobs
back at once. A cancel marks the row: the runner that holds the job sees it at its next
renewal (at once when the cancel reached its own process) and stops.

Each runner pulls at most `pull_patients_per_connection` patients at a time per connection.

When `pull_refresh_interval_seconds` is set, the refresh (one pull per connection of the linked
patients of open cases, skipped while the previous refresh of that connection is unfinished)
runs once per interval across all runners: a row in `ehr_pull_schedules` says when it is next
due, and the runner that moves it on by a guarded UPDATE queues the pulls, in the same
transaction.

The runner's own writes (claims, leases, progress, the schedule) change no case: they run
without the commit hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.transfers import audit_finished_pull
from service.connections import repository as connections_repository
from service.connections.fhir_clients import (
    backend_services_grant,
    connection_tokens,
    fhir_client_for,
)
from service.connections.models import AuthMode, Connection
from service.connections.service import (
    connection_pull_scope,
    load_connection,
    probed_searches,
    stored_capabilities,
)
from service.db.base import utcnow
from service.db.session import Database
from service.ehr.client import FhirClient
from service.ehr.url_policy import UrlPolicy
from service.errors import CaseBridgeError
from service.fhir_auth.scopes import Interaction, parse_scopes
from service.pull import repository
from service.pull.bulk import BulkExport
from service.pull.bulk_pull import pull_group
from service.pull.models import PullJob, PullState, final_state
from service.pull.reader import RECORD_TYPES, Failure, PullTarget
from service.pull.scope import bulk_type_filters, bulk_types
from service.pull.searches import PatientSearches
from service.pull.service import pull_patient_record
from service.security.encryption import SecretBox

log = logging.getLogger(__name__)

MAX_RECORDED_FAILURES = 500
REFRESH_ACTOR = "schedule:refresh"
REFRESH_SCHEDULE = "pull-refresh"
# Times one patient's pull is put off and run again because the EHR's circuit was open: an
# open circuit is the EHR being down, not the patient's record failing.
CIRCUIT_WAITS_PER_PATIENT = 3


class LeaseLost(Exception):
    """Another runner took the job over (this one was too slow to renew): stop, record nothing."""


def scopes_cover_the_record(connection: Connection, types: Sequence[str] = RECORD_TYPES) -> bool:
    """Whether the connection's SMART scopes let it read every type its pull scope reads (an
    open sandbox, with no authorization, does)."""
    if connection.auth_mode is AuthMode.none:
        return True
    scopes = parse_scopes(" ".join(connection.scopes), strict=False)
    return all(
        any(s.allows(t, Interaction.read) and s.allows(t, Interaction.search) for s in scopes)
        for t in ("Patient", *types)
    )


class PullRunner:
    def __init__(self, database: Database, policy: UrlPolicy) -> None:
        self.database = database
        self.settings = database.settings
        self.policy = policy
        assert self.settings.encryption_key is not None
        self.box = SecretBox(self.settings.encryption_key.get_secret_value())
        # Its own token cache (jobs run outside any request), sharing tokens through the
        # database with every other process.
        self.tokens = connection_tokens(database, self.box, policy)
        self._wake = asyncio.Event()
        self._jobs: dict[str, asyncio.Task[None]] = {}
        # The lease token of each job running here.
        self._leases: dict[str, str] = {}
        # Jobs stopped because their lease was lost: nothing more is written for them.
        self._lost: set[str] = set()
        self._per_connection: dict[str, asyncio.Semaphore] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="pull-runner")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Stop, and give the jobs running here back (queued again), so that another runner
        takes them at once rather than when their leases run out."""
        self._closing = True
        leases = dict(self._leases)
        tasks = [*self._jobs.values(), *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job_id, token in leases.items():
            try:
                async with self.database.transaction() as session:
                    await repository.release_job(session, job_id, token)
            except Exception:
                log.exception("pull job %s could not be given back; its lease will run out", job_id)

    def stop_job(self, job_id: str) -> None:
        """Stop a job running in this process (its row was already marked cancelled)."""
        task = self._jobs.get(job_id)
        if task is not None:
            task.cancel()

    async def wait_idle(self) -> None:
        """Until no job is queued or running (tests and benchmarks)."""
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
        while True:
            if interval:
                try:
                    await self.refresh_if_due()
                except Exception:
                    log.exception("the scheduled refresh could not queue its pulls")
            try:
                await self._start_due()
            except Exception:
                log.exception("the pull runner could not claim jobs")
            wait = self.settings.pull_poll_seconds
            if interval:
                wait = min(wait, interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def refresh_if_due(self) -> int | None:
        """Queue the refresh if it is due and no other runner has queued it for this interval;
        the pulls queued, or None when it was not this runner's turn."""
        interval = self.settings.pull_refresh_interval_seconds
        async with self.database.transaction() as session:
            if not await repository.schedule_due(session, REFRESH_SCHEDULE, interval):
                return None
            return await self._queue_refresh(session)

    async def schedule_refresh(self) -> int:
        """Queue the refresh now, whatever the schedule. Returns jobs queued."""
        async with self.database.transaction() as session:
            return await self._queue_refresh(session)

    async def _queue_refresh(self, session: AsyncSession) -> int:
        """One pull per connection of the linked patients of open cases; a connection whose
        previous refresh is still queued or running is skipped."""
        queued = 0
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

    async def _start_due(self) -> None:
        room = self.settings.pull_jobs_per_runner - len(self._jobs)
        if room <= 0 or self._closing:
            return
        async with self.database.transaction() as session:
            token, job_ids = await repository.claim_jobs(
                session, room, self.settings.pull_lease_seconds
            )
        for job_id in job_ids:
            self._leases[job_id] = token
            task = asyncio.create_task(self._run(job_id, token), name=f"pull-{job_id}")
            self._jobs[job_id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for job_id, running in list(self._jobs.items()):
            if running is task:
                del self._jobs[job_id]
                self._leases.pop(job_id, None)
                self._lost.discard(job_id)

    async def _run(self, job_id: str, token: str) -> None:
        job_task = asyncio.current_task()
        assert job_task is not None
        keeper = asyncio.create_task(self._keep_lease(job_id, token, job_task))
        try:
            await self._run_job(job_id, token)
        except LeaseLost:
            log.warning("pull job %s was taken over by another runner", job_id)
        except asyncio.CancelledError:
            if not self._closing and job_id not in self._lost:
                await self._finish(job_id, token, PullState.cancelled)
            raise
        except Exception as exc:
            log.exception("pull job %s failed", job_id)
            await self._finish(job_id, token, PullState.failed, failure=f"the job failed: {exc!r}")
        finally:
            keeper.cancel()
            # Its renewal's rollback ends before this job does (and before `close()` returns
            # and the engine is disposed); `wait` neither raises nor re-raises its cancel.
            await asyncio.wait([keeper])

    async def _keep_lease(self, job_id: str, token: str, job_task: asyncio.Task[None]) -> None:
        """Renew the lease at a third of its length while the job runs; stop the job when the
        lease was lost, or when a cancel was requested (from any process)."""
        lease = self.settings.pull_lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                async with self.database.transaction() as session:
                    cancel_requested = await repository.renew_job(session, job_id, token, lease)
            except Exception:
                log.exception("renewing the lease of pull job %s failed", job_id)
                continue
            if cancel_requested is None:
                self._lost.add(job_id)
            if cancel_requested is None or cancel_requested:
                job_task.cancel()
                return

    async def _run_job(self, job_id: str, token: str) -> None:
        async with self.database.transaction(write=False) as session:
            job = await repository.get_job(session, job_id)
            assert job is not None
            connection = await load_connection(session, job.connection_id, probes=True)
        if job.cancel_requested:  # cancelled while its runner was dead
            await self._finish(job_id, token, PullState.cancelled)
            return
        connection_id = connection.id
        capabilities = stored_capabilities(connection)
        # The same scope for a per-patient and a Bulk pull (service/pull/scope.py).
        scope = connection_pull_scope(connection, self.settings)

        async def remember_probe(resource_type: str, patient_param: str | None) -> None:
            async with self.database.transaction() as session:
                await connections_repository.remember_search_probe(
                    session, connection_id, resource_type, patient_param
                )

        searches = PatientSearches(
            capabilities,
            connection.search_overrides,
            probed_searches(connection),
            remember_probe,
        )
        may_use_everything = scopes_cover_the_record(connection, scope.types)
        # A job taken over resumes after the targets its previous runner recorded.
        done = set(job.done_targets)
        targets = [
            target
            for target in (PullTarget(**target) for target in job.targets)
            if target.label() not in done
        ]
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
            await self._finish(job_id, token, PullState.failed, failure=exc.detail)
            return

        async def pull_one(target: PullTarget) -> None:
            for waits in range(CIRCUIT_WAITS_PER_PATIENT + 1):
                await _circuit_cooldown(client)
                held_back = _held_back(client)
                async with limit:
                    result = await pull_patient_record(
                        self.database,
                        client,
                        connection_id,
                        target,
                        actor=f"pull:{job_id}",
                        capabilities=capabilities,
                        observation_categories=scope.observation_categories,
                        types=scope.types,
                        may_use_everything=may_use_everything,
                        searches=searches,
                    )
                # Failures while the circuit held requests back (this pull's, or another's at
                # the same time): the pull is put off until the next probe and run again
                # (safe: upserts and per-type cursors), not recorded as the patient's failure.
                if not result.failures or _held_back(client) == held_back:
                    break
                if waits == CIRCUIT_WAITS_PER_PATIENT:
                    break
            await self._record(
                job_id,
                token,
                target.label(),
                result.counts,
                result.failures,
                1,
                patient_id=result.patient_id,
            )

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

                types = job.bulk_types or bulk_types(scope)
                async with limit:
                    bulk = await pull_group(
                        self.database,
                        export,
                        connection_id,
                        job.bulk_group_id,
                        types=types,
                        type_filters=bulk_type_filters(scope, types),
                        observation_categories=scope.observation_categories,
                        actor=f"pull:{job_id}",
                        progress=progress,
                    )
                label = f"Group/{job.bulk_group_id}"
                await self._record(
                    job_id, token, label, bulk.counts, bulk.failures, bulk.counts.get("Patient", 0)
                )
            else:
                await _all_or_none(pull_one(target) for target in targets)
        await self._finish(job_id, token, None)

    async def _record(
        self,
        job_id: str,
        token: str,
        target: str,
        counts: dict[str, int],
        failures: list[Failure],
        patients_done: int,
        *,
        patient_id: str | None = None,
    ) -> None:
        """Add one target's outcome to the job, if this runner still holds it (else LeaseLost:
        the runner that took it over pulls that target again and records it)."""
        async with self.database.transaction() as session:
            job = await session.get(PullJob, job_id, with_for_update=True)
            assert job is not None
            if job.lease_token != token or job.state is not PullState.running:
                raise LeaseLost(job_id)
            job.done_targets = [*job.done_targets, target]
            if patient_id is not None and patient_id not in job.pulled_patient_ids:
                job.pulled_patient_ids = [*job.pulled_patient_ids, patient_id]
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
        self, job_id: str, token: str, state: PullState | None, *, failure: str | None = None
    ) -> None:
        """Set the final state; None means as the failures and counts recorded say
        (`final_state`). Only while this runner holds the job."""
        async with self.database.transaction() as session:
            job = await session.get(PullJob, job_id, with_for_update=True)
            if job is None or job.state is not PullState.running or job.lease_token != token:
                return
            job.lease_token = None
            job.lease_expires_at = None
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
            await audit_finished_pull(session, job, set(job.pulled_patient_ids))


async def _all_or_none(pulls: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the pulls at once; the first that fails (a lost lease) stops the others, so nothing
    more is read or written for a job this runner no longer holds."""
    tasks = [asyncio.create_task(pull) for pull in pulls]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _held_back(client: FhirClient) -> int:
    return 0 if client.breaker is None else client.breaker.held_back


async def _circuit_cooldown(client: FhirClient) -> None:
    """Until an open circuit lets a probe through (at once when it is closed)."""
    if client.breaker is not None:
        await asyncio.sleep(client.breaker.seconds_until_probe())
