"""RFC 6749 error responses of /auth/token and /auth/introspect.

OAuth clients expect `{"error": ..., "error_description": ...}`, not problem+json, so these
two endpoints raise `OAuthError` and `OAuthRoute` renders it; nothing else builds the body."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Literal

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

ErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "invalid_scope",
    "unsupported_grant_type",
    "temporarily_unavailable",
]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    def __init__(
        self,
        error: ErrorCode,
        description: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status or (401 if error == "invalid_client" else 400)
        self.headers = headers or {}

    def response(self) -> Response:
        headers = NO_STORE | self.headers
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_client"'
        body = {"error": self.error, "error_description": self.description}
        return Response(
            orjson.dumps(body), self.status, media_type="application/json", headers=headers
        )


class InvalidClient(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_client", description)


class OAuthRoute(APIRoute):
    """A route whose OAuthErrors become RFC 6749 JSON errors (other errors stay problems)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oauth_route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except OAuthError as exc:
                return exc.response()

        return oauth_route_handler
