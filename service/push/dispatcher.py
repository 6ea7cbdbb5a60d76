"""The push dispatcher: claims due pairs (loading each one's job in the same transaction),
pushes each, and records the outcome.

It runs inside the API process (started by the app lifespan unless
`CASEBRIDGE_PUSH_DISPATCHER_ENABLED=false`) or as standalone workers (`casebridge push-worker`).
Delivery is at least once: a push whose worker dies before `finish` is claimed again when its
lease expires, and the writes are idempotent (conditional creates on the CaseBridge identifier,
If-Match updates, the ResourceLink ledger), so the repeat changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from service.connections.fhir_clients import fhir_client_for
from service.connections.service import load_connection, stored_capabilities
from service.db.session import Database
from service.ehr.client import FhirClient
from service.ehr.discovery import Capabilities
from service.ehr.errors import EhrError, EhrRateLimited
from service.ehr.url_policy import UrlPolicy
from service.errors import CaseBridgeError
from service.push import claims
from service.push.claims import Claim
from service.push.dialect import savepoint
from service.push.job import NothingToPush, PushJob, load_job
from service.push.models import SyncStatus
from service.push.pusher import push_pair
from service.push.writes import PushReport
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens

log = logging.getLogger(__name__)
CONNECTION_RECHECK_SECONDS = 5.0


class PushDispatcher:
    def __init__(
        self,
        database: Database,
        *,
        tokens: BackendServicesTokens | None = None,
        policy: UrlPolicy | None = None,
    ) -> None:
        settings = database.settings
        assert settings.encryption_key is not None
        self.database = database
        self.settings = settings
        self.policy = policy or UrlPolicy.from_settings(settings)
        self.box = SecretBox(settings.encryption_key.get_secret_value())
        self.tokens = tokens or BackendServicesTokens(
            policy=self.policy, timeout_seconds=settings.ehr_timeout_seconds
        )
        # One pooled client per connection, remade when the connection row changes.
        self._clients: dict[str, _CachedClient] = {}
        # Pushes that start together must share the new client, not each make one.
        self._clients_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="push-dispatcher")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        for cached in self._clients.values():
            await cached.client.aclose()
        self._clients.clear()

    async def run_forever(self) -> None:
        """Keep up to `push_concurrency` pushes in flight: claim again as soon as one ends."""
        running: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            free = self.settings.push_concurrency - len(running)
            claimed: list[tuple[Claim, PushJob | Exception]] = []
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception:
                    # A claim that lost a race on SQLite ("database is locked"), a lost
                    # connection: nothing was claimed (the transaction rolled back); the
                    # dispatcher must outlive it and try again after the poll interval.
                    log.exception("push claim failed")
            for claim, job in claimed:
                task = asyncio.create_task(self._deliver(claim, job))
                running.add(task)
                task.add_done_callback(running.discard)
            if claimed and len(claimed) == free:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            elif not claimed:
                waiting = {asyncio.ensure_future(self._stop.wait()), *running}
                _, pending = await asyncio.wait(
                    waiting,
                    timeout=self.settings.push_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for future in pending - running:
                    future.cancel()
        await asyncio.gather(*running)

    # ---- one round ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim what is due (up to `push_concurrency` pairs) and push it; returns how many."""
        claimed = await self._claim(self.settings.push_concurrency)
        await asyncio.gather(*(self._deliver(claim, job) for claim, job in claimed))
        return len(claimed)

    async def _claim(self, limit: int) -> list[tuple[Claim, PushJob | Exception]]:
        """Lease due pairs and load what each push works from, in one transaction."""
        loaded: list[tuple[Claim, PushJob | Exception]] = []
        async with self.database.connection() as connection:
            for claim in await claims.claim_due(
                connection, limit, self.settings.push_lease_seconds
            ):
                try:
                    async with savepoint(connection):
                        job = await load_job(connection, claim.case_id, claim.connection_id)
                except Exception as exc:
                    # The push fails with it, recorded on the pair and retried like any
                    # failure: one unreadable pair must not undo the claims of the others.
                    loaded.append((claim, exc))
                else:
                    loaded.append((claim, job))
        return loaded

    async def run_until_idle(self, max_rounds: int = 100) -> None:
        """Push until nothing is due (tests, the CLI's --once)."""
        for _ in range(max_rounds):
            if await self.run_once() == 0:
                return

    async def _deliver(self, claim: Claim, job: PushJob | Exception) -> None:
        renewing = asyncio.create_task(self._keep_lease(claim))
        try:
            await self._push(claim, job)
        except Exception:
            # Recording the outcome failed (a lost database connection, say): the lease runs
            # out and the pair is claimed again; the writes are idempotent.
            log.exception("recording the push of case %s failed", claim.case_id)
        finally:
            renewing.cancel()

    async def _keep_lease(self, claim: Claim) -> None:
        """Renew the lease at a third of its length while the push runs, so a slow EHR does
        not let another worker take the pair over mid-push."""
        lease = self.settings.push_lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                async with self.database.connection() as session:
                    held = await claims.renew(session, claim, lease)
            except Exception:
                log.exception("renewing the lease of case %s failed", claim.case_id)
                continue
            if not held:
                return

    async def _push(self, claim: Claim, job: PushJob | Exception) -> None:
        try:
            if isinstance(job, Exception):
                raise job
            client, capabilities = await self._client(claim.connection_id)
            report, care_plan_version = await push_pair(self.database, client, capabilities, job)
        except NothingToPush as exc:
            await self._finish(claim, None, PushReport())
            log.info("push of case %s skipped: %s", claim.case_id, exc)
        except (EhrError, CaseBridgeError) as exc:
            await self._fail(claim, exc)
        except Exception as exc:  # a bug must not stop the dispatcher; it is recorded
            log.exception("push of case %s failed", claim.case_id)
            await self._fail(claim, exc)
        else:
            plan_delivered = "CarePlan" not in report.unsupported or report.plan_sent_as_document
            synced = care_plan_version if plan_delivered else None
            await self._finish(claim, synced, report)

    async def _finish(self, claim: Claim, synced_version: int | None, report: PushReport) -> None:
        async with self.database.connection() as session:
            status = await claims.finish(
                session,
                claim,
                synced_version=synced_version,
                unsupported=report.unsupported,
                links=report.links,
            )
        if status is None:
            log.warning("push of case %s finished after its lease was lost", claim.case_id)

    async def _fail(self, claim: Claim, exc: Exception) -> None:
        retry_after = exc.retry_after if isinstance(exc, EhrRateLimited) else None
        async with self.database.transaction(hooks=False) as session:
            status = await claims.fail(
                session,
                claim,
                f"{type(exc).__name__}: {exc}",
                # An EHR's Retry-After is honoured up to our own longest delay, so a huge value
                # cannot park the pair for good.
                retry_in=min(retry_after, self.settings.push_retry_max_seconds)
                if retry_after is not None
                else self.retry_delay(claim),
                max_attempts=self.settings.push_max_attempts,
            )
        if status is SyncStatus.dead:
            log.error("push of case %s dead-lettered: %s", claim.case_id, exc)

    def retry_delay(self, claim: Claim) -> float:
        """Exponential backoff with full jitter, in seconds."""
        ceiling = min(
            self.settings.push_retry_max_seconds,
            self.settings.push_retry_base_seconds * 2.0 ** (claim.attempt - 1),
        )
        return ceiling * (0.5 + random.random() / 2)

    async def _client(self, connection_id: str) -> tuple[FhirClient, Capabilities]:
        """The connection's pooled client. The row is re-read at most every few seconds, so a
        changed connection (new key, base URL, rediscovered capabilities) is picked up soon
        without a query per push."""
        cached = self._clients.get(connection_id)
        if cached is not None and time.monotonic() - cached.checked_at < CONNECTION_RECHECK_SECONDS:
            return cached.client, cached.capabilities
        async with self._clients_lock:
            return await self._fresh_client(connection_id)

    async def _fresh_client(self, connection_id: str) -> tuple[FhirClient, Capabilities]:
        now = time.monotonic()
        cached = self._clients.get(connection_id)
        if cached is not None and now - cached.checked_at < CONNECTION_RECHECK_SECONDS:
            return cached.client, cached.capabilities  # made while this push waited
        async with self.database.transaction(write=False) as session:
            connection = await load_connection(session, connection_id)
        if cached is not None and cached.version == connection.version:
            cached.checked_at = now
            return cached.client, cached.capabilities
        if cached is not None:
            await cached.client.aclose()
        fresh = _CachedClient(
            version=connection.version,
            client=fhir_client_for(
                connection,
                settings=self.settings,
                box=self.box,
                tokens=self.tokens,
                policy=self.policy,
            ),
            capabilities=stored_capabilities(connection) or Capabilities(),
            checked_at=now,
        )
        self._clients[connection_id] = fresh
        return fresh.client, fresh.capabilities


@dataclass
class _CachedClient:
    version: int
    client: FhirClient
    capabilities: Capabilities
    checked_at: float
