"""The outermost middleware: gives each request its id (`X-Request-ID`), counts and times it
per route template in the metrics, and writes the access log line.

The access line names the route template (`/api/patients/{patient_id}`), never the raw path or
the query string: either may carry a name, a birth date or an MRN."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability.logs import ACCESS_LOGGER
from service.observability.metrics import UNMATCHED_ROUTE, observe_http
from service.observability.request_ids import (
    HEADER,
    accepted_or_new,
    current_request_id,
    request_id_var,
)

access_log = logging.getLogger(ACCESS_LOGGER)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class RequestObservation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # An entry of a /fhir batch, dispatched in process, keeps the id of its batch.
        request_id = accepted_or_new(Headers(scope=scope).get(HEADER) or current_request_id())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            observe_http(template, scope["method"], status, elapsed)
            access_log.info(
                "%s %s %d",
                scope["method"],
                template,
                status,
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )
            request_id_var.reset(token)
