"""HTTP semantics of `/fhir`: media types and `_format`, ETag and Last-Modified, conditional
reads (If-None-Match, If-Modified-Since), and serving stored bytes as they are."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mappings import fhir_json
from service.api.concurrency import etag
from service.errors import BadRequest, CaseBridgeError
from service.fhir_api.outcomes import FHIR_JSON

FHIR_JSON_UTF8 = f"{FHIR_JSON}; charset=utf-8"
_JSON_FORMATS = frozenset({"json", FHIR_JSON, "application/json", "application/json+fhir"})


class NotAcceptable(CaseBridgeError):
    status = 406
    kind = "not-acceptable"
    title = "Only JSON is served"


async def check_format(request: Request) -> None:
    """`_format` overrides Accept; both must allow FHIR JSON (this server speaks no XML)."""
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


def json_body(body: bytes) -> Any:
    """The parsed request body; a 400 OperationOutcome when it is not JSON."""
    try:
        return fhir_json.loads(body)  # decimals exact (FHIR R4 §2.24.0.1)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc


def http_date(moment: dt.datetime) -> str:
    return format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def _not_modified(request: Request, version_id: int, last_updated: dt.datetime) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip() for tag in if_none_match.split(",")}
        return "*" in tags or etag(version_id) in tags or f'"{version_id}"' in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return last_updated.replace(microsecond=0) <= since
    return False


def version_headers(version_id: int, last_updated: dt.datetime) -> dict[str, str]:
    """ETag and Last-Modified of a stored version."""
    return {"ETag": etag(version_id), "Last-Modified": http_date(last_updated)}


def resource_response(
    request: Request, content: bytes, version_id: int, last_updated: dt.datetime, status: int = 200
) -> Response:
    headers = version_headers(version_id, last_updated)
    if status == 200 and _not_modified(request, version_id, last_updated):
        return Response(status_code=304, headers=headers)
    return Response(content, status, media_type=FHIR_JSON_UTF8, headers=headers)


def bundle_response(content: bytes) -> Response:
    return Response(content, 200, media_type=FHIR_JSON_UTF8)
