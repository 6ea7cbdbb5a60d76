"""Calls to an EHR's OAuth token endpoint through authlib, with failures mapped onto the
`service.ehr.errors` tree, and the token response checked before anyone uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from service.ehr.client import parse_retry_after
from service.ehr.errors import (
    EhrAuthorizationError,
    EhrConnectionError,
    EhrProtocolError,
    EhrRateLimited,
    EhrServerError,
    EhrTimeout,
)
from service.observability.metrics import TOKEN_FETCHES
from service.smart.oauth_client import OAuthError

# Used when a token response omits `expires_in` (SMART requires it; not every server sends it).
DEFAULT_TOKEN_LIFETIME_SECONDS = 300


@dataclass(frozen=True)
class TokenResponse:
    """A checked token endpoint answer. `expires_at` is epoch seconds; `extra` holds the rest
    (SMART launch context such as `patient`, `encounter`, `fhirUser`, `id_token`)."""

    access_token: str
    expires_at: float
    scope: str
    refresh_token: str | None
    extra: dict[str, Any]


@asynccontextmanager
async def mapped_token_errors(url: str, grant: str) -> AsyncIterator[None]:
    """Turn authlib's and httpx's exceptions into EhrError subclasses naming `url`, and count
    the token fetch in the metrics by grant and outcome (`ok` or the error's class)."""
    try:
        async with _mapped_errors(url, grant):
            yield
    except Exception as exc:
        TOKEN_FETCHES.labels(grant, type(exc).__name__).inc()
        raise
    TOKEN_FETCHES.labels(grant, "ok").inc()


@asynccontextmanager
async def _mapped_errors(url: str, grant: str) -> AsyncIterator[None]:
    try:
        yield
    except OAuthError as exc:
        raise EhrAuthorizationError(
            f"the token endpoint refused the {grant} grant: {exc.error}"
            + (f" ({exc.description})" if exc.description else ""),
            url=url,
            error=exc.error,
            error_description=exc.description or None,
        ) from exc
    except httpx.HTTPStatusError as exc:
        raise _status_error(exc.response, url) from exc
    except httpx.TimeoutException as exc:
        raise EhrTimeout(f"the token request timed out: {exc!r}", url=url) from exc
    except httpx.TransportError as exc:
        raise EhrConnectionError(f"the token request failed: {exc!r}", url=url) from exc
    except ValueError as exc:  # authlib: the body is not a JSON object
        raise EhrProtocolError(f"the token response is not usable: {exc}", url=url) from exc


def _status_error(response: httpx.Response, url: str) -> Exception:
    if response.status_code == 429:
        return EhrRateLimited(
            "the token endpoint is rate limiting us",
            url=url,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if response.status_code >= 500:
        return EhrServerError(
            f"the token endpoint answered {response.status_code}",
            url=url,
            remote_status=response.status_code,
        )
    return EhrAuthorizationError(
        f"the token endpoint answered {response.status_code} without an OAuth error", url=url
    )


def checked_token(token: dict[str, Any], requested_at: float, url: str) -> TokenResponse:
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise EhrProtocolError("the token response has no access_token", url=url)
    token_type = str(token.get("token_type", "")).lower()
    if token_type != "bearer":
        raise EhrProtocolError(f"token_type {token_type!r} is not bearer", url=url)
    expires_in = token.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, int | float) and expires_in > 0
        else DEFAULT_TOKEN_LIFETIME_SECONDS
    )
    refresh_token = token.get("refresh_token")
    known = {"access_token", "token_type", "expires_in", "expires_at", "scope", "refresh_token"}
    return TokenResponse(
        access_token=access_token,
        # Counted from before the request was sent, so network time never extends the lifetime.
        expires_at=requested_at + lifetime,
        scope=str(token.get("scope", "")),
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        extra={k: v for k, v in token.items() if k not in known},
    )
