"""OperationOutcome: how every error on `/fhir` is answered (the FHIR counterpart of
problem+json on `/api`). Rendered from plain dicts: an error path must not fail on validation."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

FHIR_BASE_PATH = "/fhir"
FHIR_JSON = "application/fhir+json"

# HTTP status -> the IssueType code (http://hl7.org/fhir/issue-type) that fits it best.
ISSUE_CODE_BY_STATUS: dict[int, str] = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    428: "required",
    429: "throttled",
    500: "exception",
    503: "transient",
}


def is_fhir_path(path: str) -> bool:
    return path == FHIR_BASE_PATH or path.startswith(FHIR_BASE_PATH + "/")


def outcome(
    diagnostics: str,
    *,
    severity: str = "error",
    code: str = "processing",
    expression: list[str] | None = None,
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_response(
    status: int,
    diagnostics: str,
    *,
    expression: list[str] | None = None,
    issues: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = outcome(
        diagnostics, code=ISSUE_CODE_BY_STATUS.get(status, "processing"), expression=expression
    )
    if issues:
        body["issue"] = issues
    return Response(orjson.dumps(body), status, media_type=FHIR_JSON, headers=headers)
