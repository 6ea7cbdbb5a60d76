"""HTTP around the engine: content negotiation (`_format`, Accept, Content-Type), `/fhir` paths
without redirects, and turning a `FhirRequest`/`FhirOutcome` pair into a Starlette request and
response. Everything FHIR itself means lives in `service.fhir_engine`."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import CaseBridgeError
from service.fhir_api.outcomes import FHIR_BASE_PATH, FHIR_JSON
from service.fhir_engine.patches import JSON_PATCH
from service.fhir_engine.request import FhirOutcome, FhirRequest
from service.fhir_engine.responses import FHIR_JSON_UTF8

__all__ = ["FHIR_JSON_UTF8", "check_format", "fhir_request", "response_of"]

_JSON_FORMATS = frozenset({"json", FHIR_JSON, "application/json", "application/json+fhir"})
_JSON_BODIES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
FORM = "application/x-www-form-urlencoded"


class NotAcceptable(CaseBridgeError):
    status = 406
    kind = "not-acceptable"
    title = "Only JSON is served"


class UnsupportedMediaType(CaseBridgeError):
    status = 415
    kind = "unsupported-media-type"
    title = "Only FHIR JSON is accepted"


async def check_format(request: Request) -> None:
    """`_format` overrides Accept; both must allow FHIR JSON (this server speaks no XML). A body
    must be FHIR JSON (or a form, for `_search`): anything else is a 415 (FHIR R4
    http.html#3.1.0.1.6), not a guess."""
    content_type = request.headers.get("content-type")
    if content_type is not None and request.method in ("POST", "PUT", "PATCH"):
        media_type = content_type.split(";")[0].strip().lower()
        allowed = _JSON_BODIES | ({FORM} if request.url.path.endswith("/_search") else set())
        if request.method == "PATCH":
            allowed = frozenset({JSON_PATCH})  # FHIRPath and XML Patch are not served
        if media_type not in allowed:
            raise UnsupportedMediaType(
                f"Content-Type: {content_type} is not supported; send "
                f"{JSON_PATCH if request.method == 'PATCH' else FHIR_JSON}"
            )
    requested = request.query_params.get("_format")
    if requested is not None:
        if requested.split(";")[0].strip() not in _JSON_FORMATS:
            raise NotAcceptable(f"_format={requested} is not supported; use json")
        return
    accept = request.headers.get("accept", "*/*")
    types = {part.split(";")[0].strip() for part in accept.split(",")}
    if types & (_JSON_FORMATS | {"*/*", "application/*"}):
        return
    raise NotAcceptable(f"Accept: {accept} is not supported; use {FHIR_JSON}")


def fhir_base(request: Request) -> str:
    return str(request.app.state.settings.public_base_url).rstrip("/") + FHIR_BASE_PATH


async def fhir_request(
    request: Request,
    resource_type: str | None = None,
    resource_id: str | None = None,
    *,
    version: str | None = None,
    operation: str | None = None,
) -> FhirRequest:
    return FhirRequest(
        method=request.method,
        resource_type=resource_type,
        id=resource_id,
        version=version,
        operation=operation,
        query=tuple(request.query_params.multi_items()),
        headers=dict(request.headers),  # Starlette's names are in lower case
        body=await request.body(),
        base_url=fhir_base(request),
    )


def response_of(result: FhirOutcome) -> Response:
    return Response(result.body, result.status, headers=result.headers)


class FhirPathsWithoutRedirect:
    """`[base]/` is `[base]` and `[base]/Goal/` is `[base]/Goal`: a trailing slash under `/fhir`
    is dropped before routing, so no `/fhir` URL is answered with a redirect (generic FHIR
    clients do not follow a 307 on POST)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(FHIR_BASE_PATH + "/") and path.endswith("/"):
            trimmed = path.rstrip("/")
            scope = {**scope, "path": trimmed, "raw_path": trimmed.encode()}
        await self.app(scope, receive, send)
