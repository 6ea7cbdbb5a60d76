"""OperationOutcome on `/fhir` for errors raised before the engine runs (authentication,
content negotiation, path validation): the body is the engine's (`fhir_engine.responses`), so an
error reads the same wherever it arose."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from service.fhir_engine.responses import FHIR_JSON, error_outcome

FHIR_BASE_PATH = "/fhir"

__all__ = ["FHIR_BASE_PATH", "FHIR_JSON", "is_fhir_path", "outcome_response"]


def is_fhir_path(path: str) -> bool:
    return path == FHIR_BASE_PATH or path.startswith(FHIR_BASE_PATH + "/")


def outcome_response(
    status: int,
    diagnostics: str,
    *,
    expression: list[str] | None = None,
    issues: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = error_outcome(status, diagnostics, expression=expression, issues=issues)
    return Response(orjson.dumps(body), status, media_type=FHIR_JSON, headers=headers)
