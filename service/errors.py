"""The service's typed errors. Each carries its HTTP status; one handler per API renders them.

The internal API renders them as RFC 9457 `application/problem+json`; `/fhir` renders them as
OperationOutcome. No route builds an error body by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class CaseBridgeError(Exception):
    status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"
    headers: ClassVar[Mapping[str, str]] = {}  # response headers its answer carries, both APIs

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class BadRequest(CaseBridgeError):
    status = 400
    kind = "bad-request"
    title = "Bad request"


class Unauthenticated(CaseBridgeError):
    status = 401
    kind = "unauthenticated"
    title = "Authentication required"


class Forbidden(CaseBridgeError):
    status = 403
    kind = "forbidden"
    title = "Forbidden"


class NotFound(CaseBridgeError):
    status = 404
    kind = "not-found"
    title = "Not found"


class MethodNotAllowed(CaseBridgeError):
    status = 405
    kind = "method-not-allowed"
    title = "Not allowed on this resource type"


class Gone(CaseBridgeError):
    status = 410
    kind = "gone"
    title = "Gone"


class RuleViolation(CaseBridgeError):
    """A domain rule refused the change; `rule` names it (for example `case.close.reason`)."""

    status = 409
    kind = "rule-violation"
    title = "The change breaks a case-management rule"

    def __init__(self, rule: str, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra={"rule": rule, **(extra or {})})
        self.rule = rule


class Conflict(CaseBridgeError):
    status = 409
    kind = "conflict"
    title = "Conflict"


class PreconditionFailed(CaseBridgeError):
    status = 412
    kind = "precondition-failed"
    title = "The resource changed since the version you sent"


class PayloadTooLarge(CaseBridgeError):
    status = 413
    kind = "payload-too-large"
    title = "Request body too large"


class UnprocessableEntity(CaseBridgeError):
    status = 422
    kind = "unprocessable-entity"
    title = "The request body is not valid"


class PreconditionRequired(CaseBridgeError):
    status = 428
    kind = "precondition-required"
    title = "If-Match is required on updates"


class ServiceUnavailable(CaseBridgeError):
    status = 503
    kind = "service-unavailable"
    title = "Service unavailable"


class TransientFailure(ServiceUnavailable):
    """The database ended the request's transaction for a reason of the moment, not of the
    request (`service.db.transient`): it rolled back, nothing of it was kept, and the same
    request sent again may well succeed. RFC 9110 section 15.6.4: a 503 may carry
    `Retry-After` (section 10.2.3); on `/fhir` its issue code is `transient` (R4 issue-type:
    the sender "may be able to resubmit the same content")."""

    kind = "transient"
    title = "Temporarily unable to complete the request"
    headers: ClassVar[Mapping[str, str]] = {"Retry-After": "1"}
