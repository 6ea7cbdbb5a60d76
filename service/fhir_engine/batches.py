"""`POST [base]` with a batch Bundle: each entry is an independent interaction.

Every entry is handed, in order, to the engine itself (`FhirEngine.handle`) as its own
`FhirRequest`: the same scope checks, transactions and audit facts as if the client had sent it
alone. An entry that changes something writes its audit record in its own transaction (the
engine's `keep_entry`); the others' facts are handed back, for the batch's audit. One entry's
failure is that entry's `response.outcome`; the others stand (FHIR R4 http.html#3.1.0.11.1).
An entry that fails on the server (500) gets its own record too, written by the engine after
the entry's rollback.
There is no reference resolution between entries: that is what a transaction is for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

from mappings import fhir_json
from service.audit.events import AccessFacts
from service.errors import BadRequest, CaseBridgeError
from service.fhir_auth.principal import FhirPrincipal
from service.fhir_engine.patches import JSON_PATCH, binary_patch
from service.fhir_engine.request import FhirOutcome, FhirRequest, request_from_url
from service.fhir_engine.responses import FHIR_JSON, outcome, outcome_of

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
# Bundle.entry.request element -> the HTTP header it stands for.
CONDITIONAL_HEADERS = {
    "ifMatch": "if-match",
    "ifNoneMatch": "if-none-match",
    "ifModifiedSince": "if-modified-since",
    "ifNoneExist": "if-none-exist",
}
# Headers of the batch request that each entry's request carries too.
FORWARDED_HEADERS = ("prefer",)

Handle = Callable[[FhirRequest, FhirPrincipal], Awaitable[FhirOutcome]]


class UnauditedFailure(Exception):
    """An entry failed on the server and the audit record of that failure could not be
    written on its own: its facts go with the batch's audit (the group-commit writer)."""

    def __init__(self, facts: AccessFacts) -> None:
        super().__init__("the audit record of a failed batch entry could not be written")
        self.facts = facts


def bundle_entries(bundle: dict[str, Any], kind: str, max_entries: int) -> list[Any]:
    """The entries of a batch or transaction: at least one, at most `max_entries`."""
    entries = bundle.get("entry")
    if entries is None or entries == []:
        raise BadRequest(f"the {kind} has no entries", extra={"expression": ["Bundle.entry"]})
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array", extra={"expression": ["Bundle.entry"]})
    if len(entries) > max_entries:
        raise BadRequest(
            f"a {kind} may hold at most {max_entries} entries; this one has {len(entries)}",
            extra={"expression": ["Bundle.entry"]},
        )
    return entries


async def process_batch(
    handle: Handle,
    principal: FhirPrincipal,
    request: FhirRequest,
    bundle: dict[str, Any],
    max_entries: int,
) -> tuple[bytes, list[tuple[AccessFacts, int]]]:
    """The batch-response Bundle, and the audit facts (with status) of each entry whose record
    was not written with its change."""
    entries = bundle_entries(bundle, "batch", max_entries)
    forwarded = {
        name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers
    }
    responses: list[dict[str, Any]] = []
    audited: list[tuple[AccessFacts, int]] = []
    for index, entry in enumerate(entries):
        try:
            entry_request = _entry_request(entry, index, request.base_url, forwarded)
        except CaseBridgeError as error:
            responses.append({"response": _status(error.status) | {"outcome": outcome_of(error)}})
            continue
        try:
            result = await handle(entry_request, principal)
        except Exception as exc:
            # A bug, not the client's input: this entry says so; those before it stand, as
            # they would had the client sent them one by one. `handle` wrote its audit record
            # (outcome 8) in a transaction of its own, or hands its facts to the batch's.
            log.exception("batch entry %d failed", index)
            if isinstance(exc, UnauditedFailure):
                audited.append((exc.facts, 500))
            failure = outcome(f"{_entry_path(index)} failed on the server", code="exception")
            responses.append({"response": _status(500) | {"outcome": failure}})
            continue
        if result.facts is not None and not result.kept:
            audited.append((result.facts, result.status))
        responses.append(response_entry(result, request.base_url))
    body = fhir_json.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": responses})
    return body, audited


def _entry_path(index: int) -> str:
    return f"Bundle.entry[{index}]"


def _entry_request(entry: Any, index: int, base_url: str, forwarded: dict[str, str]) -> FhirRequest:
    where = _entry_path(index)
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict):
        raise BadRequest(f"{where}.request is missing", extra={"expression": [f"{where}.request"]})
    method = request.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise BadRequest(
            f"method {method!r} is not supported", extra={"expression": [f"{where}.request.method"]}
        )
    method = method.upper()
    url = request.get("url")
    if not isinstance(url, str):
        raise BadRequest(
            f"{where}.request.url must be a string", extra={"expression": [f"{where}.request.url"]}
        )
    headers = {"accept": FHIR_JSON, **forwarded}
    for element, header in CONDITIONAL_HEADERS.items():
        if isinstance(request.get(element), str):
            headers[header] = request[element]
    body = b""
    if method in {"POST", "PUT"}:
        if not isinstance(entry.get("resource"), dict):
            raise BadRequest(
                f"a {method} entry needs a resource", extra={"expression": [f"{where}.resource"]}
            )
        body = fhir_json.dumps(entry["resource"])
        headers["content-type"] = FHIR_JSON
    elif method == "PATCH":
        body = binary_patch(entry.get("resource"), where)
        headers["content-type"] = JSON_PATCH
    try:
        return request_from_url(method, url, headers=headers, body=body, base_url=base_url)
    except CaseBridgeError as error:
        error.extra = {"expression": [f"{where}.request.url"]}
        raise


def _status(status: int) -> dict[str, str]:
    return {"status": f"{status} {HTTPStatus(status).phrase}"}


def response_entry(result: FhirOutcome, base_url: str) -> dict[str, Any]:
    response: dict[str, Any] = _status(result.status)
    headers = {name.lower(): value for name, value in result.headers.items()}
    for header in ("location", "etag"):
        if header in headers:
            response[header] = headers[header]
    if "last-modified" in headers:
        modified = parsedate_to_datetime(headers["last-modified"])
        response["lastModified"] = modified.isoformat().replace("+00:00", "Z")
    body = fhir_json.loads(result.body) if result.body else None
    entry: dict[str, Any] = {}
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        response["outcome"] = body
    elif isinstance(body, dict) and "resourceType" in body:
        if "id" in body and body["resourceType"] != "Bundle":
            entry["fullUrl"] = f"{base_url}/{body['resourceType']}/{body['id']}"
        entry["resource"] = body
    entry["response"] = response
    return entry
