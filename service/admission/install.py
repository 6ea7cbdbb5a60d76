"""Wires admission control into the app."""

from __future__ import annotations

from fastapi import FastAPI

from service.admission.in_flight import InFlightBound, InFlightGate
from service.admission.rate_limits import RateLimiter, RateLimitMiddleware


def install_admission(app: FastAPI) -> None:
    """Add the middlewares; call after every other middleware, so these run first: the
    in-flight bound outermost, then the rate limits (whose bucket writes it also bounds)."""
    settings = app.state.settings
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    app.add_middleware(RateLimitMiddleware)
    app.state.in_flight = InFlightGate(
        limit=settings.max_in_flight,
        queue=settings.in_flight_queue,
        max_wait_seconds=settings.in_flight_max_wait_seconds,
    )
    app.add_middleware(InFlightBound, gate=app.state.in_flight)
