"""Prometheus metrics, served at `/metrics` to an admin (the same API keys or bearer tokens as
the other admin routes).

Counters and histograms of this process (HTTP requests, EHR calls, token fetches) live in the
default registry. What the database knows (outbox depth and push lag, pull jobs by state, open
conflicts) is read at scrape time, a handful of grouped `COUNT`s, so every replica reports the
same truth without a background loop.

Several uvicorn workers: each worker keeps its own counters and a scrape reaches one of them,
so process counters cover that worker only (the database gauges are whole). Run one worker per
container and scrape each (docs/observability.md); prometheus-client's multiprocess mode is
not used."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admission.in_flight import InFlightGate
from service.auth.deps import Actor, require_admin
from service.db.base import utcnow
from service.db.session import DatabaseDep

HTTP_REQUESTS = Counter(
    "casebridge_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "casebridge_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
)
HTTP_ERRORS = Counter(
    "casebridge_http_errors",
    "HTTP requests answered with a 4xx or 5xx status, by status.",
    ["status"],
)
EHR_LATENCY = Histogram(
    "casebridge_ehr_request_duration_seconds",
    "Time of one HTTP request to an EHR's FHIR API (each retry counts), by connection.",
    ["connection", "method"],
)
EHR_ERRORS = Counter(
    "casebridge_ehr_request_errors",
    "EHR requests that failed, by connection and error (an HTTP status, timeout, connection).",
    ["connection", "error"],
)
TOKEN_FETCHES = Counter(
    "casebridge_ehr_token_fetches",
    "Requests to EHR token endpoints (SMART), by grant type and outcome (ok or error class).",
    ["grant", "outcome"],
)

UNMATCHED_ROUTE = "unmatched"


@contextmanager
def ehr_call_observed(connection: str, method: str) -> Iterator[EhrCall]:
    """Time one request to an EHR and count it as an error if it raises or answers >= 400."""
    call = EhrCall()
    started = time.perf_counter()
    try:
        yield call
    except Exception as exc:
        EHR_ERRORS.labels(connection, _error_kind(exc)).inc()
        raise
    finally:
        EHR_LATENCY.labels(connection, method).observe(time.perf_counter() - started)
    if call.status is not None and call.status >= 400:
        EHR_ERRORS.labels(connection, str(call.status)).inc()


@dataclass
class EhrCall:
    status: int | None = None


def _error_kind(exc: Exception) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    return "connection" if "Connect" in name or "Transport" in name else name


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)
    if status >= 400:
        HTTP_ERRORS.labels(str(status)).inc()


# ---- gauges read from the database at scrape time ------------------------------------------


class _Snapshot(Collector):
    """Families already read (asynchronously) for this one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def database_families(session: AsyncSession, *, audit_pending: int) -> list[Metric]:
    from service.pull.models import IdentityConflict, PullJob, PullState
    from service.push.models import ConflictStatus, PushConflict, PushOutboxEntry
    from service.review.models import ReviewSource
    from service.review.repository import count_open_by_source

    now = utcnow()
    depth = GaugeMetricFamily(
        "casebridge_push_outbox_depth",
        "Committed changes not yet delivered to the EHR, per connection.",
        labels=["connection"],
    )
    lag = GaugeMetricFamily(
        "casebridge_push_lag_seconds",
        "Age of the oldest change not yet delivered to the EHR, per connection.",
        labels=["connection"],
    )
    pending = await session.execute(
        select(
            PushOutboxEntry.connection_id,
            func.count(),
            func.min(PushOutboxEntry.created_at),
        )
        .where(PushOutboxEntry.delivered_at.is_(None))
        .group_by(PushOutboxEntry.connection_id)
    )
    for connection_id, count, oldest in pending:
        depth.add_metric([connection_id], count)
        lag.add_metric([connection_id], _age(now, oldest))

    jobs = GaugeMetricFamily("casebridge_pull_jobs", "Pull jobs by state.", labels=["state"])
    counted = dict(
        (await session.execute(select(PullJob.state, func.count()).group_by(PullJob.state))).all()
    )
    for state in PullState:
        jobs.add_metric([state.value], counted.get(state, 0))

    push_conflicts = GaugeMetricFamily(
        "casebridge_push_conflicts_open",
        "Push conflicts waiting for a person to review them, per connection.",
        labels=["connection"],
    )
    for connection_id, count in await session.execute(
        select(PushConflict.connection_id, func.count())
        .where(PushConflict.status == ConflictStatus.open)
        .group_by(PushConflict.connection_id)
    ):
        push_conflicts.add_metric([connection_id], count)
    identity_conflicts = GaugeMetricFamily(
        "casebridge_identity_conflicts_open",
        "Pulled patients matching several local patients, waiting for review, per connection.",
        labels=["connection"],
    )
    for connection_id, count in await session.execute(
        select(IdentityConflict.connection_id, func.count())
        .where(IdentityConflict.resolved_at.is_(None))
        .group_by(IdentityConflict.connection_id)
    ):
        identity_conflicts.add_metric([connection_id], count)

    review_items = GaugeMetricFamily(
        "casebridge_review_items_open",
        "Inbound changes the case could not take, waiting for a person to decide, per source.",
        labels=["source"],
    )
    open_items = await count_open_by_source(session)
    for source in ReviewSource:
        review_items.add_metric([source.value], open_items.get(source, 0))

    audit = GaugeMetricFamily(
        "casebridge_audit_pending_records",
        "Audit records handed in by requests of this process and not yet committed.",
        value=audit_pending,
    )
    return [depth, lag, jobs, push_conflicts, identity_conflicts, review_items, audit]


def breaker_families() -> list[Metric]:
    """This process's circuit breaker per EHR connection (service.ehr.circuit): 1 for the
    state it is in, with its consecutive transient failures."""
    from service.ehr.circuit import BreakerState, breaker_states

    state = GaugeMetricFamily(
        "casebridge_ehr_circuit_state",
        "Circuit breaker of an EHR connection in this process: 1 for its current state.",
        labels=["connection", "state"],
    )
    failures = GaugeMetricFamily(
        "casebridge_ehr_circuit_failures",
        "Consecutive transient failures counted by an EHR connection's breaker here.",
        labels=["connection"],
    )
    for connection_id, snapshot in sorted(breaker_states().items()):
        for each in BreakerState:
            state.add_metric([connection_id, each.value], float(snapshot.state is each))
        failures.add_metric([connection_id], snapshot.consecutive_failures)
    return [state, failures]


def admission_families(gate: InFlightGate | None) -> list[Metric]:
    """This process's in-flight bound (service.admission): its current limit, which adapts to
    the latency, the requests in flight and those waiting for a slot."""
    if gate is None or not gate.bounded:
        return []
    return [
        GaugeMetricFamily(
            "casebridge_in_flight_limit",
            "Requests this process handles at once now (the adaptive concurrency limit).",
            value=gate.limit,
        ),
        GaugeMetricFamily(
            "casebridge_in_flight_requests",
            "Requests this process is handling, counted by the in-flight bound.",
            value=gate.in_flight,
        ),
        GaugeMetricFamily(
            "casebridge_in_flight_waiting",
            "Requests waiting for a slot of the in-flight bound.",
            value=gate.waiting,
        ),
        GaugeMetricFamily(
            "casebridge_in_flight_baseline_seconds",
            "The no-load latency the adaptive limit compares recent latency with (0: unknown).",
            value=gate.control.baseline or 0.0,
        ),
    ]


def _age(now: dt.datetime, oldest: dt.datetime | None) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=dt.UTC)
    return max(0.0, (now - oldest).total_seconds())


router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def metrics(
    request: Request,
    database: DatabaseDep,
    _admin: Annotated[Actor, Depends(require_admin)],
) -> Response:
    """Prometheus text exposition (admin only)."""
    recorder = getattr(request.app.state, "audit_recorder", None)
    async with database.transaction(write=False) as session:
        families = await database_families(
            session, audit_pending=recorder.pending if recorder is not None else 0
        )
    scrape = CollectorRegistry(auto_describe=False)
    gate = getattr(request.app.state, "in_flight", None)
    scrape.register(_Snapshot(families + breaker_families() + admission_families(gate)))
    return Response(
        generate_latest(REGISTRY) + generate_latest(scrape), media_type=CONTENT_TYPE_LATEST
    )
