"""What the engine answers with: FHIR JSON bodies, version headers, conditional-read checks, and
the OperationOutcome every error becomes (the one place an error body is built on `/fhir`).

Rendered from plain dicts: an error path must not fail on validation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from mappings import fhir_json
from service.api.concurrency import etag
from service.errors import BadRequest, CaseBridgeError

FHIR_JSON = "application/fhir+json"
FHIR_JSON_UTF8 = f"{FHIR_JSON}; charset=utf-8"

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


def json_body(body: bytes) -> Any:
    """The parsed request body; a 400 OperationOutcome when it is not JSON."""
    try:
        return fhir_json.loads(body)  # decimals exact (FHIR R4 §2.24.0.1)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc


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


def information(text: str) -> dict[str, Any]:
    return outcome(text, severity="information", code="informational")


def error_outcome(
    status: int,
    diagnostics: str,
    *,
    expression: list[str] | None = None,
    issues: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The OperationOutcome of an error with this status (FHIR R4 http.html#2.21.0.5: errors
    carry an OperationOutcome)."""
    body = outcome(
        diagnostics, code=ISSUE_CODE_BY_STATUS.get(status, "processing"), expression=expression
    )
    if issues:
        body["issue"] = issues
    return body


def outcome_of(error: CaseBridgeError) -> dict[str, Any]:
    """A typed error as an OperationOutcome: `expression` and `issues` come from its extras."""
    expression = error.extra.get("expression")
    issues = error.extra.get("issues")
    return error_outcome(
        error.status,
        f"{error.title}: {error.detail}" if error.detail else error.title,
        expression=expression if isinstance(expression, list) else None,
        issues=issues if isinstance(issues, list) else None,
    )


def http_date(moment: dt.datetime) -> str:
    return format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def version_headers(version_id: int, last_updated: dt.datetime) -> dict[str, str]:
    """ETag and Last-Modified of a stored version."""
    return {"ETag": etag(version_id), "Last-Modified": http_date(last_updated)}


def not_modified(headers: Mapping[str, str], version_id: int, last_updated: dt.datetime) -> bool:
    """A conditional read (If-None-Match, else If-Modified-Since) the stored version satisfies;
    `headers` are keyed in lower case."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip() for tag in if_none_match.split(",")}
        return "*" in tags or etag(version_id) in tags or f'"{version_id}"' in tags
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        try:
            return last_updated.replace(microsecond=0) <= since
        except TypeError:  # a date without a zone cannot be compared with an instant
            return False
    return False
