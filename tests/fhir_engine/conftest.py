"""The engine driven directly: `FhirRequest` in, `FhirOutcome` out, no HTTP, against the real
migrated test database (tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.db.session import Database
from service.fhir_auth.principal import FhirPrincipal
from service.fhir_auth.scopes import parse_scopes
from service.fhir_engine.request import FhirOutcome, FhirRequest, request_from_url
from service.fhir_engine.router import FhirEngine

BASE = "https://casebridge.test/fhir"


@pytest.fixture
def engine(database: Database) -> FhirEngine:
    # Writes are projected by the engine's own units of work: nothing to install.
    return FhirEngine(database, capability_statement=lambda: b'{"resourceType":"Capability"}')


def principal(scopes: str = "system/*.cruds", patient: str | None = None) -> FhirPrincipal:
    return FhirPrincipal("engine-test", parse_scopes(scopes, strict=True), patient)


def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> FhirRequest:
    """The interaction `url` (relative to the base) names, as a batch entry would."""
    content = body if isinstance(body, bytes) else b"" if body is None else orjson.dumps(body)
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if url == "":  # the base: a transaction or batch
        return FhirRequest(method, headers=lowered, body=content, base_url=BASE)
    return request_from_url(
        method,
        url,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=content,
        base_url=BASE,
    )


async def call(
    engine: FhirEngine,
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    who: FhirPrincipal | None = None,
) -> FhirOutcome:
    return await engine.handle(request(method, url, body, headers), who or principal())


def parsed(result: FhirOutcome, status: int) -> dict[str, Any]:
    assert result.status == status, result.body
    body: dict[str, Any] = orjson.loads(result.body)
    return body


def refused(result: FhirOutcome, status: int) -> dict[str, Any]:
    body = parsed(result, status)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    assert body["issue"][0]["diagnostics"]
    return body
