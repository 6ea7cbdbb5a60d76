"""Traces: off by default (nothing instrumented); when on, a request yields a server span
named by its route template with SQL spans inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.app import create_app
from service.db.session import Database
from service.observability.tracing import install_tracing, tracing_configured
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    settings: Settings, database: Database, exporter: InMemorySpanExporter
) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    assert install_tracing(application, SimpleSpanProcessor(exporter))
    async with application.router.lifespan_context(application):
        yield application


async def test_tracing_is_off_unless_configured(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert not tracing_configured(settings)
    assert app.state.tracer_provider is None
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing_configured(settings)


async def test_a_request_is_traced_with_its_sql(
    traced: FastAPI, exporter: InMemorySpanExporter
) -> None:
    transport = httpx.ASGITransport(app=traced)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"X-API-Key": BOOTSTRAP_KEY}
    ) as http:
        response = await http.get("/api/patients/some-id")
    assert response.status_code == 404
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.parent is None and s.name.startswith("GET ")]
    assert server.name == "GET /api/patients/{patient_id}"
    assert server.attributes is not None
    assert server.attributes.get("http.route") == "/api/patients/{patient_id}"
    sql = [s for s in spans if s.context.trace_id == server.context.trace_id and s.parent]
    assert any(s.attributes and "db.system" in str(dict(s.attributes)) for s in sql)
    assert HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
