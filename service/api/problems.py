"""RFC 9457 problem+json for the internal API: every error is rendered here and nowhere else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.db.transient import transient_failure
from service.errors import CaseBridgeError, Conflict, PreconditionFailed, UnprocessableEntity
from service.fhir_api.outcomes import is_fhir_path, outcome_response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://casebridge.dev/problems/"


class Problem(BaseModel):
    """The problem+json body (RFC 9457). `rule` names a broken domain rule; `errors` lists
    the invalid fields of a request body."""

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "rule-violation"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    rule: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str | None,
    instance: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """problem+json, or an OperationOutcome when the request was made to `/fhir`."""
    headers = dict(headers or {})
    if status == 401:
        # RFC 6750 §3: a token that was sent but is not valid says so (`error="invalid_token"`).
        challenge = 'Bearer error="invalid_token"' if kind == "invalid-token" else "Bearer"
        headers["WWW-Authenticate"] = challenge
    if is_fhir_path(instance):
        return outcome_response(
            status,
            f"{title}: {detail}" if detail else title,
            expression=extra.get("expression") or _expressions(extra.get("errors")),
            issues=extra.get("issues"),
            headers=headers,
        )
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + kind,
        "title": title,
        "status": status,
        "instance": instance,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(
        orjson.dumps(body, default=str), status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _expressions(errors: list[dict[str, Any]] | None) -> list[str] | None:
    return [e["location"] for e in errors] if errors else None


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "location": ".".join(str(p) for p in err["loc"]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    async def casebridge_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CaseBridgeError)
        return problem_response(
            exc.status,
            exc.kind,
            exc.title,
            exc.detail,
            request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _field_errors(exc)
        malformed = any(e["type"] == "json_invalid" for e in errors)
        return problem_response(
            400 if malformed else UnprocessableEntity.status,
            "malformed-json" if malformed else UnprocessableEntity.kind,
            "Malformed JSON" if malformed else UnprocessableEntity.title,
            f"{len(errors)} invalid field(s)",
            request.url.path,
            errors=errors,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code, f"http-{exc.status_code}", str(exc.detail), None, request.url.path
        )

    async def stale_row(request: Request, exc: Exception) -> Response:
        # Another transaction updated the row between our read and our write: the version
        # check in the UPDATE's WHERE clause matched nothing.
        return await casebridge_error(
            request, PreconditionFailed("another change to this record was committed first")
        )

    async def integrity_error(request: Request, exc: Exception) -> Response:
        return await casebridge_error(
            request, Conflict("the change collides with stored data (a unique key or a link)")
        )

    async def database_error(request: Request, exc: Exception) -> Response:
        # A deadlock or the like is the moment's, not the request's: 503 with Retry-After
        # (`service.db.transient`). Any other database error is unexpected: re-raised, it
        # reaches `unexpected_error` (a 500, and the traceback in the server's log).
        assert isinstance(exc, DBAPIError)
        if (transient := transient_failure(exc)) is None:
            raise exc
        return await casebridge_error(request, transient)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this response, so the server logs the traceback; the
        # client learns only that nothing was committed.
        return problem_response(
            500, "internal-error", "Internal error", "nothing was changed", request.url.path
        )

    app.add_exception_handler(CaseBridgeError, casebridge_error)
    app.add_exception_handler(StaleDataError, stale_row)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


_PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request",
    401: "Missing or bad credential",
    403: "Not allowed for this caller",
    404: "Not found",
    409: "Breaks a domain rule (see `rule`)",
    412: "If-Match does not match the current version",
    413: "Body too large",
    422: "Invalid body or parameters (see `errors`)",
    428: "If-Match is required",
    500: "Internal error; nothing was changed",
    503: "A dependency (database, identity provider) is unavailable, or the database ended the "
    "transaction for a reason of the moment (a deadlock): retry after `Retry-After`",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting these statuses as problem+json."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": _PROBLEM_DESCRIPTIONS[status],
        }
        for status in statuses
    }


# Every authenticated route; writes add theirs at the operation.
PROBLEM_RESPONSES = problems(400, 401, 404, 422, 500, 503)
CREATE_PROBLEMS = problems(409, 413)
UPDATE_PROBLEMS = problems(409, 412, 413, 428)
ADMIN_PROBLEMS = PROBLEM_RESPONSES | problems(403)
