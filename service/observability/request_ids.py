"""The request id: taken from a valid incoming `X-Request-ID` or generated, returned in the
response, and kept in a contextvar so that logs and audit records written on the request's
behalf (including background tasks it starts, which copy the context) carry it."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
# An id someone else chose lands in our logs and the audit trail: only short, plain tokens are
# taken (no spaces, quotes or control characters that could forge a log line).
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

request_id_var: ContextVar[str | None] = ContextVar("casebridge_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def accepted_or_new(incoming: str | None) -> str:
    """The caller's id when it is a plain token of at most 128 characters, else a new UUID."""
    if incoming is not None and _VALID.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())
