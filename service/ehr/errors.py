"""Exceptions raised by the EHR FHIR client, the SSRF policy and discovery.

The tree, so callers can catch at the depth they care about::

    EhrError                      anything that went wrong talking to an EHR (502)
    ├── EhrUrlRefused             the SSRF policy refused a URL or a redirect (422)
    ├── EhrTransientError         worth retrying later; the client already retried (503)
    │   ├── EhrTimeout            connect/read/write/pool timeout
    │   ├── EhrConnectionError    DNS, TCP or TLS failure
    │   ├── EhrRateLimited        429 after the retries ran out (carries retry_after)
    │   ├── EhrServerError        5xx after the retries ran out
    │   └── EhrCircuitOpen        not sent: the connection's circuit breaker is open (carries
    │                             retry_after); callers reschedule without counting an attempt
    ├── EhrRejected               a 4xx: the request itself is wrong; carries the OperationOutcome
    │   ├── EhrUnauthorized       401, still after one re-authentication
    │   ├── EhrForbidden          403: typically a scope the token lacks
    │   ├── EhrNotFound           404 / 410
    │   └── EhrPreconditionFailed 412: If-Match lost a race
    ├── EhrProtocolError          the EHR broke the protocol: bad JSON, not a Bundle, paging loop
    │   └── EhrDiscoveryError     no usable SMART configuration or CapabilityStatement
    └── EhrAuthorizationError     the token endpoint refused us (invalid_client, invalid_scope...)

Every error names the URL it concerns in `extra["url"]` when there is one.
"""

from __future__ import annotations

from typing import Any

from service.errors import CaseBridgeError


class EhrError(CaseBridgeError):
    status = 502
    kind = "ehr-error"
    title = "The EHR request failed"

    def __init__(self, detail: str, *, url: str | None = None, **extra: Any) -> None:
        payload: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
        if url is not None:
            payload["url"] = url
        super().__init__(detail, extra=payload)
        self.url = url


class EhrUrlRefused(EhrError):
    status = 422
    kind = "ehr-url-refused"
    title = "The EHR URL is not allowed"


class EhrTransientError(EhrError):
    status = 503
    kind = "ehr-unavailable"
    title = "The EHR is temporarily unavailable"


class EhrTimeout(EhrTransientError):
    kind = "ehr-timeout"
    title = "The EHR did not answer in time"


class EhrConnectionError(EhrTransientError):
    kind = "ehr-connection-failed"
    title = "Could not connect to the EHR"


class EhrRateLimited(EhrTransientError):
    kind = "ehr-rate-limited"
    title = "The EHR is rate limiting us"

    def __init__(self, detail: str, *, url: str | None = None, retry_after: float | None) -> None:
        super().__init__(detail, url=url, retry_after=retry_after)
        self.retry_after = retry_after


class EhrServerError(EhrTransientError):
    kind = "ehr-server-error"
    title = "The EHR failed with a server error"

    def __init__(self, detail: str, *, url: str | None = None, remote_status: int) -> None:
        super().__init__(detail, url=url, remote_status=remote_status)
        self.remote_status = remote_status


class EhrCircuitOpen(EhrTransientError):
    """Nothing was sent: the EHR failed repeatedly and its circuit breaker holds requests back
    (service.ehr.circuit). Not a failure of the request itself, so not an attempt."""

    kind = "ehr-circuit-open"
    title = "Requests to the EHR are held back after repeated failures"

    def __init__(self, detail: str, *, url: str | None = None, retry_after: float) -> None:
        super().__init__(detail, url=url, retry_after=retry_after)
        self.retry_after = retry_after


class EhrRejected(EhrError):
    """A 4xx answer. `outcome` is the remote OperationOutcome as a dict, when one was sent."""

    kind = "ehr-rejected"
    title = "The EHR rejected the request"

    def __init__(
        self,
        detail: str,
        *,
        url: str | None = None,
        remote_status: int,
        outcome: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, url=url, remote_status=remote_status, outcome=outcome)
        self.remote_status = remote_status
        self.outcome = outcome


class EhrUnauthorized(EhrRejected):
    kind = "ehr-unauthorized"
    title = "The EHR did not accept our credentials"


class EhrForbidden(EhrRejected):
    kind = "ehr-forbidden"
    title = "The EHR refused access (missing scope or permission)"


class EhrNotFound(EhrRejected):
    kind = "ehr-not-found"
    title = "The EHR has no such resource"


class EhrPreconditionFailed(EhrRejected):
    kind = "ehr-precondition-failed"
    title = "The EHR resource changed since the version we sent"


class EhrProtocolError(EhrError):
    kind = "ehr-protocol-error"
    title = "The EHR answered with something we cannot use"


class EhrDiscoveryError(EhrProtocolError):
    kind = "ehr-discovery-failed"
    title = "The EHR's SMART configuration could not be discovered"


class EhrAuthorizationError(EhrError):
    """The OAuth token endpoint refused us. `error` is the OAuth error code (RFC 6749 5.2)."""

    kind = "ehr-authorization-failed"
    title = "The EHR's authorization server refused the token request"

    def __init__(
        self,
        detail: str,
        *,
        url: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(detail, url=url, error=error, error_description=error_description)
        self.error = error
        self.error_description = error_description
