"""`POST /fhir` with a transaction Bundle: POST, PUT, PATCH, DELETE and GET entries, plain or
conditional, all or nothing (FHIR R4 http.html#transaction).

- The entries run in the order R4 gives (http.html#trules): DELETE, then POST, then PUT and
  PATCH, then GET. All of them run in the request's one unit of work: the first entry that
  fails rolls back every other, and the OperationOutcome names it. A GET entry is a read
  (`Type/id`) or a search (`Type?params`), answered by the engine as if sent alone (the same
  scope checks, and its own audit record), on the transaction's connection, so it sees the
  entries' writes.
- POST entries that carry a CarePlan are one new case (`transactions.store_case_entries`).
  Otherwise each POST entry is created as if sent alone (`creates`: a Patient is a local
  patient, a ServiceRequest a referral intake, a Goal, Condition or CareTeam joins or opens
  its patient's case), Patients first, then ServiceRequests, Conditions, and the rest, so a
  resource can name an earlier one by its `urn:uuid` fullUrl. `ifNoneExist` is honoured.
- PUT entries update (`Type/id`, or `Type?identifier=system|value`, conditional update), with
  `ifMatch`; DELETE entries delete (`deletes`: `Type/id`, or conditional `Type?params`), with
  the same rules as the single interactions. References to other entries' fullUrls are
  rewritten to the ids they got.
- PATCH entries carry a JSON Patch in a Binary (`patches.binary_patch`), applied to the
  current version (as the transaction's earlier entries left it) and then updated like a PUT
  entry, with `ifMatch`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mappings import fhir_json
from mappings.bundles import with_references
from mappings.unkept_elements import unkept_elements
from service.db.unit_of_work import UnitOfWork
from service.errors import BadRequest, CaseBridgeError
from service.fhir_auth.principal import FhirPrincipal
from service.fhir_engine import creates, deletes, patches, updates
from service.fhir_engine.batches import bundle_entries
from service.fhir_engine.patches import JSON_PATCH, binary_patch
from service.fhir_engine.request import FhirRequest, request_from_url
from service.fhir_engine.transactions import CASE_TYPES, CaseEntry, FhirRejected, store_case_entries
from service.fhir_store.models import StoredResource

# FHIR R4 http.html#trules: deletes, then creates, then updates, then reads.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3}
# A GET entry's answer: the entry of the response Bundle (resource and response).
Read = Callable[[FhirRequest], Awaitable[dict[str, Any]]]
# Lone creates: what others may name comes first (a Goal names its Patient and Conditions).
CREATE_ORDER = {"Patient": 0, "ServiceRequest": 1, "Condition": 2}


@dataclass
class Step:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    query: list[tuple[str, str]]
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None
    read: FhirRequest | None = None  # a GET entry's interaction
    patch: bytes | None = None  # a PATCH entry's JSON Patch

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _text(value: object, where: str) -> str | None:
    if not isinstance(value, str | None):
        raise BadRequest(f"{where} must be a string", extra={"expression": [where]})
    return value


def _read_step(index: int, url: str, base_url: str) -> Step:
    where = f"Bundle.entry[{index}].request.url"
    try:
        read = request_from_url("GET", url, headers={}, body=b"", base_url=base_url)
    except CaseBridgeError as exc:
        raise BadRequest(f"{where}: {exc.detail}", extra={"expression": [where]}) from exc
    if read.resource_type is None or read.operation is not None:
        raise BadRequest(
            f"{where}: a GET entry of a transaction is a read (Type/id) or a search (Type?params)",
            extra={"expression": [where]},
        )
    resource_type = read.resource_type
    return Step(index, "GET", resource_type, read.id, [], None, None, None, None, read)


def _steps(bundle: Any, max_entries: int, base_url: str = "") -> list[Step]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("the body must be a Bundle", extra={"expression": ["Bundle"]})
    if bundle.get("type") != "transaction":
        raise BadRequest(
            f"Bundle.type {bundle.get('type')!r} is not supported here; send a transaction "
            "or a batch",
            extra={"expression": ["Bundle.type"]},
        )
    steps: list[Step] = []
    for index, entry in enumerate(bundle_entries(bundle, "transaction", max_entries)):
        where = f"Bundle.entry[{index}]"
        if not isinstance(entry, dict):
            raise BadRequest(f"{where} must be an object", extra={"expression": [where]})
        request, resource = entry.get("request"), entry.get("resource")
        if not isinstance(request, dict):
            raise BadRequest(
                f"{where}.request must be an object with method and url",
                extra={"expression": [f"{where}.request"]},
            )
        method = request.get("method")
        if method not in ORDER:
            raise BadRequest(
                f"{where}.request.method {method!r} is not served in a transaction here "
                "(POST, PUT, PATCH, DELETE, GET)",
                extra={"expression": [f"{where}.request.method"]},
            )
        patch = None
        if method == "PATCH":
            patch, resource = binary_patch(resource, where), None
        if isinstance(resource, dict) and resource.get("resourceType") not in CASE_TYPES:
            raise FhirRejected(
                f"{resource.get('resourceType')} is not part of a case",
                extra={"expression": [f"{where}.resource"]},
            )
        url = _text(request.get("url"), f"{where}.request.url") or ""
        if method == "GET":
            steps.append(_read_step(index, url, base_url))
            continue
        try:
            target = request_from_url(method, url, headers={}, body=b"", base_url="")
        except CaseBridgeError as exc:
            raise BadRequest(
                f"{where}.request.url: {exc.detail}",
                extra={"expression": [f"{where}.request.url"]},
            ) from exc
        kind = target.resource_type
        if kind not in CASE_TYPES or target.operation is not None or target.version is not None:
            raise FhirRejected(
                f"{where}.request.url {url!r} is not a {method} of a resource type served here "
                f"({', '.join(sorted(CASE_TYPES))})",
                extra={"expression": [f"{where}.request.url"]},
            )
        if method == "DELETE":
            if target.id is None and not target.query:
                raise BadRequest(
                    "a DELETE entry names one resource (Type/id) or its criteria (Type?params)",
                    extra={"expression": [f"{where}.request.url"]},
                )
        elif method == "PATCH":
            if target.id is None or target.query:
                raise BadRequest(
                    "a PATCH entry names one resource (Type/id); a conditional PATCH is not "
                    "served here, as alone",
                    extra={"expression": [f"{where}.request.url"]},
                )
        elif not isinstance(resource, dict):
            raise BadRequest(
                f"{where}.resource must be the {kind} the entry {method}s",
                extra={"expression": [f"{where}.resource"]},
            )
        elif resource.get("resourceType") != kind:
            raise BadRequest(
                f"{where}.request.url names a {kind}; the resource is a "
                f"{resource.get('resourceType')}",
                extra={"expression": [f"{where}.request.url"]},
            )
        elif method == "POST" and (target.id is not None or target.query):
            raise BadRequest(
                "a POST entry's url is the resource type",
                extra={"expression": [f"{where}.request.url"]},
            )
        elif method == "PUT" and target.id is None and not target.query:
            raise BadRequest(
                "a PUT entry's url is Type/id or Type?identifier=system|value",
                extra={"expression": [f"{where}.request.url"]},
            )
        steps.append(
            Step(
                index,
                method,
                str(kind),
                target.id,
                list(target.query),
                resource if isinstance(resource, dict) else None,
                _text(entry.get("fullUrl"), f"{where}.fullUrl"),
                _text(request.get("ifNoneExist"), f"{where}.request.ifNoneExist"),
                _text(request.get("ifMatch"), f"{where}.request.ifMatch"),
                patch=patch,
            )
        )
    return steps


async def process_transaction(
    session: UnitOfWork,
    principal: FhirPrincipal,
    bundle: Any,
    base_url: str,
    max_entries: int,
    read: Read | None = None,
) -> bytes:
    """The transaction-response Bundle; `read` answers the GET entries (none without it)."""
    steps = _steps(bundle, max_entries, base_url)
    responses: dict[int, dict[str, Any]] = {}
    references: dict[str, str] = {}
    for step in sorted(steps, key=lambda s: ORDER[s.method]):
        if step.method == "DELETE":
            responses[step.index] = await _delete(session, principal, step)
    posts = [s for s in steps if s.method == "POST"]
    if any(s.resource_type == "CarePlan" for s in posts):
        entries = [CaseEntry(s.index, s.resource or {}, s.full_url, s.if_none_exist) for s in posts]
        made, references = await store_case_entries(session, principal, entries)
        responses |= made
    else:
        for step in sorted(posts, key=lambda s: CREATE_ORDER.get(s.resource_type, 3)):
            responses[step.index] = await _create(session, principal, step, references)
    for step in steps:
        if step.method == "PUT":
            responses[step.index] = await _update(session, principal, step, references)
        elif step.method == "PATCH":
            responses[step.index] = await _patch(session, principal, step)
    reads: dict[int, dict[str, Any]] = {}
    for step in steps:
        if step.read is not None:
            if read is None:
                raise BadRequest(f"{step.where}: GET entries are not served here")
            try:
                reads[step.index] = await read(step.read)
            except CaseBridgeError as exc:
                raise _at(exc, step) from exc
    return _response(steps, responses, reads, base_url)


async def _delete(session: UnitOfWork, principal: FhirPrincipal, step: Step) -> dict[str, Any]:
    try:
        resource_id = step.resource_id or await deletes.resolve_conditional(
            session, principal, step.resource_type, step.query
        )
        if resource_id is None:  # a conditional delete that matched nothing
            return {"status": "204 No Content"}
        row = await deletes.delete_resource(session, principal, step.resource_type, resource_id)
    except CaseBridgeError as exc:
        raise _at(exc, step) from exc
    return {"status": "204 No Content", "etag": f'W/"{row.version_id}"'}


async def _create(
    session: UnitOfWork, principal: FhirPrincipal, step: Step, references: dict[str, str]
) -> dict[str, Any]:
    resource = with_references(step.resource or {}, references)
    try:
        made = await creates.create_resource(
            session,
            principal,
            step.resource_type,
            fhir_json.dumps(resource),
            step.if_none_exist,
        )
    except CaseBridgeError as exc:
        raise _at(exc, step) from exc
    row = made.row
    if step.full_url:
        references[step.full_url] = f"{row.resource_type}/{row.id}"
    if not made.created:
        return {"status": "200 OK", "location": f"{row.resource_type}/{row.id}"}
    return _written(row, "201 Created", {**resource, "id": row.id})


async def _update(
    session: UnitOfWork, principal: FhirPrincipal, step: Step, references: dict[str, str]
) -> dict[str, Any]:
    resource = with_references(step.resource or {}, references)
    try:
        resource_id = step.resource_id or await updates.resolve_conditional(
            session, step.resource_type, step.query
        )
        row = await updates.update_resource(
            session,
            principal,
            step.resource_type,
            resource_id,
            fhir_json.dumps(resource),
            step.if_match,
        )
    except CaseBridgeError as exc:
        raise _at(exc, step) from exc
    return _written(row, "200 OK", resource)


async def _patch(session: UnitOfWork, principal: FhirPrincipal, step: Step) -> dict[str, Any]:
    assert step.patch is not None
    assert step.resource_id is not None
    resource_id = step.resource_id
    try:
        body = await patches.patched_current(
            session, principal, step.resource_type, resource_id, step.patch, JSON_PATCH
        )
        row = await updates.update_resource(
            session, principal, step.resource_type, resource_id, body, step.if_match
        )
    except CaseBridgeError as exc:
        raise _at(exc, step) from exc
    return _written(row, "200 OK", fhir_json.loads(body))


def _written(row: StoredResource, status: str, received: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "status": status,
        "location": f"{row.resource_type}/{row.id}/_history/{row.version_id}",
        "etag": f'W/"{row.version_id}"',
        "lastModified": row.last_updated.isoformat(),
    }
    if issues := unkept_elements(received, fhir_json.loads(row.content)):
        response["outcome"] = {"resourceType": "OperationOutcome", "issue": issues}
    return response


def _at(error: CaseBridgeError, step: Step) -> CaseBridgeError:
    """The error, saying which entry it came from (the whole Bundle is rolled back)."""
    error.detail = f"{step.where} ({step.method} {step.resource_type}): {error.detail}"
    return error


def _response(
    steps: list[Step],
    responses: dict[int, dict[str, Any]],
    reads: dict[int, dict[str, Any]],
    base_url: str,
) -> bytes:
    entries = []
    for step in steps:
        if step.index in reads:
            entries.append(reads[step.index])
            continue
        response = responses[step.index]
        entry: dict[str, Any] = {"response": response}
        if location := response.get("location"):
            target = "/".join(str(location).split("/")[:2])
            entry["fullUrl"] = f"{base_url}/{target}"
        elif step.resource_id is not None:
            entry["fullUrl"] = f"{base_url}/{step.resource_type}/{step.resource_id}"
        entries.append(entry)
    return fhir_json.dumps(
        {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    )
