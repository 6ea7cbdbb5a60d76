"""OpenTelemetry traces of requests (FastAPI), EHR calls (httpx) and SQL (SQLAlchemy),
exported over OTLP/HTTP. Off unless an endpoint is configured: `CASEBRIDGE_OTEL_EXPORTER_OTLP_
ENDPOINT`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
(the exporter reads the other standard `OTEL_*` variables, such as headers, itself).

Spans carry no query string values beyond what the instrumentations record: the FastAPI one
records the route template as the span name; URLs with queries stay in span attributes, which
go to the trace backend only (not the logs)."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

from service.settings import Settings

STANDARD_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_configured(settings: Settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint) or any(
        os.environ.get(name) for name in STANDARD_ENDPOINT_VARIABLES
    )


def _otlp_processor(settings: Settings) -> SpanProcessor:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))


def install_tracing(app: FastAPI, processor: SpanProcessor | None = None) -> bool:
    """Instrument the app when tracing is configured (or a processor is given, in tests).
    Must run before the app starts; `start_tracing` and `stop_tracing` run in its lifespan."""
    settings: Settings = app.state.settings
    app.state.tracer_provider = None
    if processor is None:
        if not tracing_configured(settings):
            return False
        processor = _otlp_processor(settings)
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "casebridge"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(processor)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics"
    )
    app.state.tracer_provider = provider
    return True


def start_tracing(app: FastAPI, engine: AsyncEngine) -> None:
    provider: TracerProvider | None = app.state.tracer_provider
    if provider is None:
        return
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    # Its declared range stops before SQLAlchemy 2.1, whose engine events it uses unchanged
    # (tests/observability/test_tracing.py shows the SQL spans).
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True
    )


def stop_tracing(app: FastAPI) -> None:
    provider: TracerProvider | None = app.state.tracer_provider
    if provider is None:
        return
    HTTPXClientInstrumentor().uninstrument()
    SQLAlchemyInstrumentor().uninstrument()
    provider.shutdown()
