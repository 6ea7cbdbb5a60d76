"""Wires admission control into the app."""

from __future__ import annotations

from fastapi import FastAPI

from service.admission.in_flight import InFlightBound, InFlightGate
from service.admission.rate_limits import RateLimiter, RateLimitMiddleware
from service.audit.refusals import RefusalAuditing


def install_admission(app: FastAPI) -> None:
    """Add the middlewares; call after every other middleware, so these run first: the
    in-flight bound outermost, then the rate limits (whose bucket writes it also bounds); and
    outside them the audit of their refusals (service/audit/refusals.py)."""
    settings = app.state.settings
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    app.add_middleware(RateLimitMiddleware)
    app.state.in_flight = InFlightGate(
        limit=settings.max_in_flight,
        queue=settings.in_flight_queue,
        max_wait_seconds=settings.in_flight_max_wait_seconds,
        adaptive=settings.in_flight_adaptive,
        minimum=settings.min_in_flight,
        tolerance=settings.in_flight_latency_tolerance,
    )
    app.add_middleware(InFlightBound, gate=app.state.in_flight)
    # Outside every layer that refuses before the audit middleware: counts their refusals.
    app.add_middleware(RefusalAuditing)
