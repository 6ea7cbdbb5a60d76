"""Why an App Launch failed. Each is a 400 problem+json with its own `type`, so a browser, a
log or a support ticket says precisely what went wrong:

    LaunchError                 any App Launch failure (400)
    ├── UnregisteredIssuer      `iss` names no App Launch connection; it is never followed
    ├── LaunchStateRejected     the callback's state is missing, unknown, replayed, expired,
    │                           or belongs to another browser session (`reason` says which)
    └── AuthorizationRefused    the EHR sent the user back with an OAuth error
                                (`error`, `error_description`: RFC 6749 4.1.2.1)

A token endpoint failure during the code exchange is an `EhrAuthorizationError` (502).
"""

from __future__ import annotations

from typing import Literal

from service.errors import CaseBridgeError

StateFailure = Literal["missing", "unknown", "replayed", "expired", "wrong-session"]


class LaunchError(CaseBridgeError):
    status = 400
    kind = "smart-launch-failed"
    title = "The SMART App Launch failed"


class UnregisteredIssuer(LaunchError):
    kind = "smart-unregistered-iss"
    title = "The launching EHR is not registered for App Launch"

    def __init__(self, iss: str) -> None:
        super().__init__(
            f"iss {iss!r} is not the FHIR base URL of a registered App Launch connection",
            extra={"iss": iss},
        )


class LaunchStateRejected(LaunchError):
    kind = "smart-state-rejected"
    title = "The authorization response does not match a pending launch"

    def __init__(self, reason: StateFailure, detail: str) -> None:
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason


class AuthorizationRefused(LaunchError):
    kind = "smart-authorization-refused"
    title = "The EHR refused the authorization request"

    def __init__(self, error: str, description: str | None) -> None:
        detail = f"the EHR answered {error}" + (f": {description}" if description else "")
        super().__init__(detail, extra={"error": error, "error_description": description})
        self.error = error
