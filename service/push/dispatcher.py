"""The push dispatcher: claims due pairs (loading each one's job in the same transaction),
pushes each, and records the outcomes.

It runs inside the API process (started by the app lifespan unless
`CASEBRIDGE_PUSH_DISPATCHER_ENABLED=false`) or as standalone workers (`casebridge push-worker`).
Delivery is at least once: a push whose worker dies before its outcome is recorded is claimed
again when its lease expires, and the writes are idempotent (conditional creates on the
CaseBridge identifier, If-Match updates, the ResourceLink ledger), so the repeat changes nothing
twice.

`push_concurrency` counts pushes talking to EHRs; as many more wait behind them, claimed and
loaded, so a place that frees is taken at once. The bookkeeping is the dispatcher loop's alone:
a push hands its outcome back and gives up its place, and the next round records every outcome
that has come in and claims what fills the room, all in one transaction. So the EHR always has
work waiting, the SQLite write lock is taken once per round rather than twice per push, and a
burst of outcomes costs one commit. A waiting push's lease is renewed like a running one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit.transfers import DeliveredPush, audit_delivered_pushes
from service.connections.fhir_clients import connection_tokens, fhir_client_for
from service.connections.service import load_connection, stored_capabilities
from service.db.base import utcnow
from service.db.session import Database
from service.ehr.client import FhirClient
from service.ehr.discovery import Capabilities
from service.ehr.errors import EhrCircuitOpen, EhrError, EhrRateLimited
from service.ehr.url_policy import UrlPolicy
from service.errors import CaseBridgeError
from service.push import claims
from service.push.claims import Claim
from service.push.dialect import savepoint
from service.push.job import NothingToPush, Pair, PushJob, load_job, load_jobs
from service.push.models import SyncStatus
from service.push.pusher import push_pair
from service.push.retention import PRUNE_BATCH, PRUNE_INTERVAL_SECONDS, prune_delivered
from service.push.writes import PushReport
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens

log = logging.getLogger(__name__)
CONNECTION_RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class Outcome:
    """What one push came to, waiting to be recorded: its report, or the error it failed with."""

    claim: Claim
    report: PushReport | None = None
    synced_version: int | None = None
    error: Exception | None = None
    # Never pushed (the dispatcher stopped first): the claim is given back.
    released: bool = False


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
        self.tokens = tokens or connection_tokens(database, self.box, self.policy)
        # One pooled client per connection, remade when the connection row changes.
        self._clients: dict[str, _CachedClient] = {}
        # Pushes that start together must share the new client, not each make one.
        self._clients_lock = asyncio.Lock()
        # Pushes talking to EHRs; claimed ones wait here for a place.
        self._places = asyncio.Semaphore(settings.push_concurrency)
        # Claimed pushes that have not handed their outcome back yet (running or waiting).
        self._in_hand = 0
        # Outcomes of ended pushes, recorded by the next round.
        self._outcomes: list[Outcome] = []
        self._outcome_arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        # When (event-loop time) the next batch of old deliveries is pruned: at the start.
        self._next_prune = 0.0

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
        """Keep `push_concurrency` pushes in flight, and as many claimed and loaded behind them,
        so that a push that ends is followed at once. A round records the outcomes that came
        in and claims enough to fill both again; see `_until_next_round` for when."""
        held = 2 * self.settings.push_concurrency
        claimed_pushes: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            await self.prune_outbox()
            room = held - self._in_hand
            try:
                claimed = await self._round(self._take_outcomes(), room)
            except Exception:
                # A claim that lost a race on SQLite ("database is locked"), a lost
                # connection: nothing was claimed (the transaction rolled back); the
                # dispatcher must outlive it and try again after the poll interval.
                log.exception("push claim failed")
                claimed = []
            for claim, job in claimed:
                task = self._spawn(claim, job)
                claimed_pushes.add(task)
                task.add_done_callback(claimed_pushes.discard)
            # All that was asked for: more may be due as soon as there is room.
            more_due = len(claimed) == room
            poll = self.settings.push_poll_seconds
            await self._until_next_round(held, None if more_due else poll)
        # Stopping: the running pushes end (the waiting ones give their claims back), and their
        # outcomes are recorded as they come, not only when the last one ends.
        while self._in_hand:
            if not self._outcomes:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._outcome_arrived.wait(), self.settings.push_poll_seconds
                    )
            await self._round(self._take_outcomes(), 0)  # raises only when it claims
        await asyncio.gather(*claimed_pushes)
        await self._round(self._take_outcomes(), 0)

    async def _until_next_round(self, held: int, timeout: float | None) -> None:
        """Wait until half the room is free again (so a round records a batch of outcomes
        and claims a batch: under load, one commit per `push_concurrency` pushes), or every
        claimed push has ended, or `timeout` seconds pass, or the dispatcher stops. The pushes
        waiting behind the running ones keep the EHR busy meanwhile. An outcome waits at most
        the poll interval to be recorded, however slow the other pushes are."""
        batch = self.settings.push_concurrency
        loop = asyncio.get_running_loop()
        deadline = math.inf if timeout is None else loop.time() + timeout
        recording_due = False
        while not self._stop.is_set():
            if self._outcomes:
                if held - self._in_hand >= batch or self._in_hand == 0:
                    return
                if not recording_due:
                    recording_due = True
                    deadline = min(deadline, loop.time() + self.settings.push_poll_seconds)
            remaining = None if deadline == math.inf else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            self._outcome_arrived.clear()
            await self._wait(remaining)

    async def _wait(self, timeout: float | None) -> None:
        """Until a push ends, the dispatcher stops, or `timeout` seconds pass."""
        waiters = {
            asyncio.ensure_future(self._outcome_arrived.wait()),
            asyncio.ensure_future(self._stop.wait()),
        }
        _, pending = await asyncio.wait(
            waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            waiter.cancel()

    def _take_outcomes(self) -> list[Outcome]:
        taken, self._outcomes = self._outcomes, []
        self._outcome_arrived.clear()
        return taken

    async def prune_outbox(self) -> int:
        """When it is due, delete a batch of deliveries older than the retention; how many.
        A full batch leaves the next one due at once: a backlog goes a batch per round,
        between the pushes, rather than holding them up."""
        days = self.settings.push_outbox_retention_days
        now = asyncio.get_running_loop().time()
        if not days or now < self._next_prune:
            return 0
        try:
            async with self.database.connection() as connection:
                pruned = await prune_delivered(connection, utcnow() - dt.timedelta(days=days))
        except Exception:
            log.exception("pruning delivered outbox rows failed; tried again in an interval")
            pruned = 0
        self._next_prune = now + (0.0 if pruned == PRUNE_BATCH else PRUNE_INTERVAL_SECONDS)
        return pruned

    # ---- one round ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim what is due (up to `push_concurrency` pairs), push it and record the
        outcomes; returns how many were claimed."""
        claimed = await self._round(self._take_outcomes(), self.settings.push_concurrency)
        await asyncio.gather(*(self._spawn(claim, job) for claim, job in claimed))
        await self._round(self._take_outcomes(), 0)
        return len(claimed)

    async def run_until_idle(self, max_rounds: int = 100) -> None:
        """Push until nothing is due (tests, the CLI's --once)."""
        for _ in range(max_rounds):
            if await self.run_once() == 0:
                return

    async def _round(
        self, outcomes: Sequence[Outcome], free: int
    ) -> list[tuple[Claim, PushJob | Exception]]:
        """Record `outcomes`, then lease up to `free` due pairs and load what each push works
        from: one transaction. Should it fail, nothing is claimed and each outcome is recorded
        on its own; one that still cannot be is lost, and its pair is pushed again once its
        lease runs out."""
        if not outcomes and free <= 0:
            return []
        # Claimed as of the round's start: a pair this round settles back to pending (a change
        # came in during its push) is due from its settling on, so the next round pushes it.
        # Leasing a row this transaction has written already would check its foreign keys
        # again on PostgreSQL, waiting on a case row that an API write may hold while it
        # waits on the pair.
        started = utcnow()
        try:
            async with self.database.connection() as connection:
                await self._record_all(connection, outcomes)
                return await self._claim(connection, free, started) if free > 0 else []
        except Exception:
            if not outcomes:
                raise
            log.exception("a push round failed; its outcomes are recorded one by one")
            for outcome in outcomes:
                try:
                    async with self.database.connection() as connection:
                        await self._record(connection, outcome)
                except Exception:
                    log.exception("recording the push of case %s failed", outcome.claim.case_id)
            if free > 0:
                raise
            return []

    async def _claim(
        self, connection: AsyncConnection, limit: int, now: dt.datetime
    ) -> list[tuple[Claim, PushJob | Exception]]:
        """Lease up to `limit` pairs due at `now` and load their jobs together; should that
        fail, each on its own, so that one unreadable pair does not undo the claims of the
        others."""
        lease = self.settings.push_lease_seconds
        claimed = await claims.claim_due(connection, limit, lease, now)
        if not claimed:
            return []
        try:
            async with savepoint(connection):
                jobs = await load_jobs(connection, [claims.pair_of(c) for c in claimed])
        except Exception:
            log.exception("loading %d push jobs together failed", len(claimed))
        else:
            return [(claim, jobs[claims.pair_of(claim)]) for claim in claimed]
        loaded: list[tuple[Claim, PushJob | Exception]] = []
        for claim in claimed:
            try:
                async with savepoint(connection):
                    job = await load_job(connection, claim.case_id, claim.connection_id)
            except Exception as exc:
                # The push fails with it, recorded on the pair and retried like any failure.
                loaded.append((claim, exc))
            else:
                loaded.append((claim, job))
        return loaded

    async def _record_all(self, connection: AsyncConnection, outcomes: Sequence[Outcome]) -> None:
        """Record a round's outcomes: every pair taken first (in the order every writer locks
        pair rows in, see service.push.outbox), then the pushes that ended well in a fixed
        handful of statements, then the rest one by one. Should the batch fail, its outcomes
        are recorded one by one too."""
        if not outcomes:
            return
        held = await claims.hold(connection, [outcome.claim for outcome in outcomes])
        ended_well = [o for o in outcomes if o.error is None and not o.released]
        rest = [o for o in outcomes if o.error is not None or o.released]
        try:
            async with savepoint(connection):
                lost = await claims.finish_all(connection, [_finish(o) for o in ended_well], held)
                await audit_delivered_pushes(
                    connection, [_delivered(o) for o in ended_well if o.claim not in lost]
                )
        except Exception:
            log.exception("recording %d pushes together failed", len(ended_well))
            rest += ended_well
        else:
            for claim in lost:
                log.warning("push of case %s ended after its lease was lost", claim.case_id)
        for outcome in sorted(rest, key=_pair):
            await self._record(connection, outcome)

    async def _record(self, connection: AsyncConnection, outcome: Outcome) -> None:
        """Record one outcome. A failure is logged and leaves the others to be recorded (under
        a savepoint on PostgreSQL, whose transaction would otherwise be lost with it): the
        pair's lease runs out and it is pushed again; the writes are idempotent."""
        claim = outcome.claim
        try:
            async with savepoint(connection):
                if outcome.released:
                    await claims.release(connection, claim)
                    return
                if outcome.error is None:
                    status = await claims.finish(connection, _finish(outcome))
                    if status is not None:
                        await audit_delivered_pushes(connection, [_delivered(outcome)])
                else:
                    status = await self._fail(connection, claim, outcome.error)
        except Exception:
            log.exception("recording the push of case %s failed", claim.case_id)
            return
        if status is None:
            log.warning("push of case %s ended after its lease was lost", claim.case_id)
        elif status is SyncStatus.dead:
            log.error("push of case %s dead-lettered: %s", claim.case_id, outcome.error)

    def _spawn(self, claim: Claim, job: PushJob | Exception) -> asyncio.Task[None]:
        self._in_hand += 1
        return asyncio.create_task(self._deliver(claim, job))

    async def _deliver(self, claim: Claim, job: PushJob | Exception) -> None:
        """Push once a place is free; the lease is kept from the claim on."""
        renewing = asyncio.create_task(self._keep_lease(claim))
        try:
            async with self._places:
                if renewing.done():  # the lease was lost while this push waited
                    log.warning("push of case %s lost its lease before it began", claim.case_id)
                    return
                if self._stop.is_set():
                    outcome = Outcome(claim, released=True)
                else:
                    outcome = await self._push(claim, job)
        finally:
            renewing.cancel()
            self._in_hand -= 1
        self._outcomes.append(outcome)
        self._outcome_arrived.set()

    async def _keep_lease(self, claim: Claim) -> None:
        """Renew the lease at a third of its length from the claim until the push ends
        (waiting for a place included), so a slow EHR does not let another worker take the
        pair over mid-push."""
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

    async def _push(self, claim: Claim, job: PushJob | Exception) -> Outcome:
        try:
            if isinstance(job, Exception):
                raise job
            client, capabilities = await self._client(claim.connection_id)
            report, care_plan_version = await push_pair(self.database, client, capabilities, job)
        except NothingToPush as exc:
            log.info("push of case %s skipped: %s", claim.case_id, exc)
            return Outcome(claim, PushReport())
        except (EhrError, CaseBridgeError) as exc:
            return Outcome(claim, error=exc)
        except Exception as exc:  # a bug must not stop the dispatcher; it is recorded
            log.exception("push of case %s failed", claim.case_id)
            return Outcome(claim, error=exc)
        plan_delivered = "CarePlan" not in report.unsupported or report.plan_sent_as_document
        return Outcome(claim, report, care_plan_version if plan_delivered else None)

    async def _fail(
        self, connection: AsyncConnection, claim: Claim, exc: Exception
    ) -> SyncStatus | None:
        if isinstance(exc, EhrRateLimited | EhrCircuitOpen):
            # Throttling (RFC 6585 §4) or an open circuit says "later", not "this push is
            # wrong": not an attempt that dead-letters. A 429's Retry-After (RFC 9110 §10.2.3)
            # is honoured; without one, the backoff grows exponentially with jitter over the
            # throttles in a row, and an open circuit's cool-down is its least. All up to our
            # own longest delay, so that a huge value cannot park the pair for good.
            backoff = self.throttle_delay(claim)
            if isinstance(exc, EhrCircuitOpen):
                delay = max(exc.retry_after, backoff)
            else:
                delay = backoff if exc.retry_after is None else exc.retry_after
            return await claims.throttled(
                connection,
                claim,
                f"{type(exc).__name__}: {exc}",
                retry_in=min(delay, self.settings.push_retry_max_seconds),
            )
        return await claims.fail(
            connection,
            claim,
            f"{type(exc).__name__}: {exc}",
            # An EHR's Retry-After is honoured up to our own longest delay, so a huge value
            # cannot park the pair for good.
            retry_in=self.retry_delay(claim),
            max_attempts=self.settings.push_max_attempts,
        )

    def throttle_delay(self, claim: Claim) -> float:
        """Exponential backoff with half jitter over the throttles in a row, in seconds."""
        ceiling = min(
            self.settings.push_retry_max_seconds,
            self.settings.push_retry_base_seconds * 2.0**claim.throttles,
        )
        return ceiling * (0.5 + random.random() / 2)

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


def _pair(outcome: Outcome) -> Pair:
    return claims.pair_of(outcome.claim)


def _finish(outcome: Outcome) -> claims.Finish:
    report = outcome.report or PushReport()
    return claims.Finish(outcome.claim, outcome.synced_version, report.unsupported, report.links)


def _delivered(outcome: Outcome) -> DeliveredPush:
    report = outcome.report or PushReport()
    claim = outcome.claim
    # Written one by one (written_local) or in a transaction (links recorded with the finish).
    written = dict.fromkeys(
        [
            *report.written_local,
            *((r.resource_type, r.id, r.version_id) for r, _state in report.links),
        ]
    )
    return DeliveredPush(claim.case_id, claim.connection_id, list(written))


@dataclass
class _CachedClient:
    version: int
    client: FhirClient
    capabilities: Capabilities
    checked_at: float
