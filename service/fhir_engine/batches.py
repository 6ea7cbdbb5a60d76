"""`POST /fhir` with a batch Bundle: each entry is an independent interaction.

Every entry is dispatched, in order, as its own request through this same application (in
process, over ASGI): the same routes, token and scope checks, transactions and audit events as
if the client had sent it alone. One entry's failure is that entry's `response.outcome`; the
others stand. There is no reference resolution between entries: that is what a transaction is
for.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson
from fastapi import Request

from service.errors import BadRequest
from service.fhir_api.outcomes import FHIR_JSON

MAX_ENTRIES = 500
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE"})
# Bundle.entry.request element -> the HTTP header it stands for.
CONDITIONAL_HEADERS = {
    "ifMatch": "If-Match",
    "ifNoneMatch": "If-None-Match",
    "ifModifiedSince": "If-Modified-Since",
    "ifNoneExist": "If-None-Exist",
}
# Headers of the batch request that each entry's request carries too.
FORWARDED_HEADERS = ("authorization", "prefer")


def batch_entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not entries:
        raise BadRequest("the batch has no entries", extra={"expression": ["Bundle.entry"]})
    if len(entries) > MAX_ENTRIES:
        raise BadRequest(
            f"a batch may hold at most {MAX_ENTRIES} entries; this one has {len(entries)}",
            extra={"expression": ["Bundle.entry"]},
        )
    return entries


async def process_batch(request: Request, bundle: dict[str, Any], base_url: str) -> bytes:
    entries = batch_entries(bundle)
    client = request.client
    transport = httpx.ASGITransport(
        app=request.app,
        raise_app_exceptions=False,
        client=(client.host, client.port) if client else ("127.0.0.1", 0),
    )
    forwarded = {
        name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers
    }
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as http:
        responses = [
            await _dispatch(http, entry, index, base_url, forwarded)
            for index, entry in enumerate(entries)
        ]
    return orjson.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": responses})


async def _dispatch(
    http: httpx.AsyncClient,
    entry: Any,
    index: int,
    base_url: str,
    forwarded: dict[str, str],
) -> dict[str, Any]:
    where = f"Bundle.entry[{index}]"
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict):
        return _refused(400, f"{where}.request is missing", f"{where}.request")
    method = str(request.get("method", "")).upper()
    if method not in METHODS:
        return _refused(400, f"method {method!r} is not supported", f"{where}.request.method")
    path = _local_path(str(request.get("url", "")), base_url)
    if path is None:
        return _refused(
            400,
            "request.url must be relative to this server (Type, Type/id, Type?query)",
            f"{where}.request.url",
        )
    headers = {"Accept": FHIR_JSON, **forwarded}
    for element, header in CONDITIONAL_HEADERS.items():
        if isinstance(request.get(element), str):
            headers[header] = request[element]
    content: bytes | None = None
    if method in {"POST", "PUT"}:
        if not isinstance(entry.get("resource"), dict):
            return _refused(400, f"a {method} entry needs a resource", f"{where}.resource")
        content = orjson.dumps(entry["resource"])
        headers["Content-Type"] = FHIR_JSON
    response = await http.request(method, "/fhir/" + path, content=content, headers=headers)
    return _entry(response, base_url)


def _local_path(url: str, base_url: str) -> str | None:
    """`Type/id?query` of an entry URL, or None when it names another server or no type (a
    nested batch or transaction)."""
    if url.startswith(base_url + "/"):
        url = url[len(base_url) + 1 :]
    url = url.lstrip("/")
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    # No dot segments, however encoded: "Goal/../../api/…" would leave /fhir.
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        return None
    if not (parts.path[0].isupper() or parts.path == "metadata"):
        return None
    return url


def _entry(response: httpx.Response, base_url: str) -> dict[str, Any]:
    status = f"{response.status_code} {HTTPStatus(response.status_code).phrase}"
    result: dict[str, Any] = {"status": status}
    for header, element in (("location", "location"), ("etag", "etag")):
        if header in response.headers:
            result[element] = response.headers[header]
    if "last-modified" in response.headers:
        modified = parsedate_to_datetime(response.headers["last-modified"])
        result["lastModified"] = modified.isoformat().replace("+00:00", "Z")
    body = orjson.loads(response.content) if response.content else None
    entry: dict[str, Any] = {}
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        result["outcome"] = body
    elif isinstance(body, dict) and "resourceType" in body:
        if "id" in body and body["resourceType"] != "Bundle":
            entry["fullUrl"] = f"{base_url}/{body['resourceType']}/{body['id']}"
        entry["resource"] = body
    entry["response"] = result
    return entry


def _refused(status: int, diagnostics: str, expression: str) -> dict[str, Any]:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": diagnostics,
                "expression": [expression],
            }
        ],
    }
    return {"response": {"status": f"{status} {HTTPStatus(status).phrase}", "outcome": outcome}}
