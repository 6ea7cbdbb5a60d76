"""The FastAPI application: wiring only. Each domain brings its own router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.admission.install import install_admission
from service.api import health
from service.api.body_limit import BodySizeLimit
from service.api.problems import install_problem_handlers
from service.assessments.routes import assessments_router, needs_router
from service.audit import routes as audit
from service.audit.middleware import AuditMiddleware
from service.audit.recorder import AuditRecorder
from service.auth import routes as admin_keys
from service.auth.oidc import OidcVerifier
from service.cases import routes as cases
from service.checkins.routes import check_ins_router
from service.connections import routes as connections
from service.db.schema import is_current, upgrade_to_head
from service.db.session import Database
from service.ehr.url_policy import UrlPolicy
from service.fhir_api import metadata as fhir_metadata
from service.fhir_api import routes as fhir_routes
from service.fhir_api.http import FhirPathsWithoutRedirect
from service.fhir_auth import routes as fhir_auth
from service.links import routes as patient_links
from service.observability import metrics as prometheus_metrics
from service.observability.http import RequestObservation
from service.observability.logs import suppress_uvicorn_access_log
from service.observability.tracing import install_tracing, start_tracing, stop_tracing
from service.patients import routes as patients
from service.plans.routes import goals_router, interventions_router
from service.pull import routes as pulls
from service.pull.runner import PullRunner
from service.push import routes as push
from service.push.dispatcher import PushDispatcher
from service.review import routes as review_items
from service.settings import Settings, get_settings
from service.smart import jwks_routes, launch_routes

log = logging.getLogger(__name__)


class SchemaOutOfDate(RuntimeError):
    pass


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    database = Database(settings)
    if not await is_current(database.engine):
        if not settings.auto_migrate:
            await database.dispose()
            raise SchemaOutOfDate(
                "the database schema is not current: run `casebridge db upgrade` "
                "(or start with CASEBRIDGE_AUTO_MIGRATE=true)"
            )
        log.warning("upgrading the database schema (auto_migrate)")
        await upgrade_to_head(database.engine)
    app.state.database = database
    suppress_uvicorn_access_log()
    start_tracing(app, database.engine)
    app.state.audit_recorder = AuditRecorder(database)
    app.state.audit_recorder.start()
    app.state.pull_runner = None
    if settings.pull_runner_enabled:
        app.state.pull_runner = PullRunner(database, UrlPolicy.from_settings(settings))
        await app.state.pull_runner.start()
    app.state.push_dispatcher = None
    if settings.push_dispatcher_enabled:
        app.state.push_dispatcher = PushDispatcher(database)
        app.state.push_dispatcher.start()
    app.state.oidc_verifier = (
        OidcVerifier(
            settings.oidc_issuer,
            settings.oidc_jwks_url,
            settings.oidc_audience,
            settings.oidc_algorithms,
            refetch_interval_seconds=settings.jwks_refetch_interval_seconds,
        )
        if settings.oidc_issuer and settings.oidc_jwks_url
        else None
    )
    try:
        yield
    finally:
        if app.state.pull_runner is not None:
            await app.state.pull_runner.close()
        if app.state.push_dispatcher is not None:
            await app.state.push_dispatcher.close()
        await app.state.audit_recorder.close()
        if app.state.oidc_verifier is not None:
            await app.state.oidc_verifier.aclose()
        stop_tracing(app)
        await database.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="CaseBridge",
        version="0.1.0",
        summary="Case management <-> FHIR R4 (US Core) integration service",
        lifespan=_lifespan,
        # Requests are traced by our own instrumentation (observability/tracing.py), with its
        # own provider. FastAPI's native telemetry would look up OpenTelemetry's global
        # providers on every request (3% of a search's CPU) and, were one set, trace each
        # request a second time.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings or get_settings()
    install_problem_handlers(app)
    for router in (
        health.router,
        prometheus_metrics.router,
        # /fhir first, as routes match in order and these are the busiest paths; its own
        # fixed paths precede the /fhir/{type}/... patterns that would shadow them.
        fhir_auth.smart_configuration_router,
        fhir_metadata.router,
        fhir_routes.router,
        admin_keys.router,
        admin_keys.practitioners,
        patients.router,
        patient_links.router,
        cases.router,
        assessments_router,
        needs_router,
        goals_router,
        interventions_router,
        cases.care_team_router,
        check_ins_router,
        cases.transitions_router,
        cases.notes_router,
        connections.router,
        jwks_routes.router,
        launch_routes.router,
        fhir_auth.admin_router,
        fhir_auth.oauth_router,
        audit.router,
        pulls.router,
        push.router,
        review_items.router,
        # Routers of further domains go here.
    ):
        app.include_router(router)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=app.state.settings.max_body_bytes)
    app.add_middleware(FhirPathsWithoutRedirect)
    install_admission(app)
    # Outermost: the request id is set before anything logs or audits.
    app.add_middleware(RequestObservation)
    install_tracing(app)
    return app
