"""`/fhir` read interactions: read, vread, history (instance and type) and search.

Every route asks the caller's SMART scopes first (`FhirPrincipal`), then serves stored bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit.events import AccessFacts
from service.audit.middleware import note_access
from service.db.session import Database, DatabaseDep, SessionDep
from service.errors import BadRequest, NotFound
from service.fhir_api import creates, deletes, reads, updates, validation
from service.fhir_api.batches import process_batch
from service.fhir_api.bundles import Entry, bundle_bytes
from service.fhir_api.http import (
    FHIR_JSON_UTF8,
    bundle_response,
    check_format,
    json_body,
    resource_response,
    version_headers,
)
from service.fhir_api.search import (
    Match,
    SearchRequest,
    cursor_after,
    decode_cursor,
    encode_cursor,
    parse_search,
)
from service.fhir_api.transactions import process_transaction
from service.fhir_auth.principal import FhirPrincipal, FhirPrincipalDep, Interaction
from service.fhir_store.models import ResourceVersion, StoredResource
from service.fhir_store.search_params import SEARCH_PARAMS, date_range

router = APIRouter(prefix="/fhir", tags=["fhir"], dependencies=[Depends(check_format)])

ResourceType = Annotated[str, Path(description="A supported resource type, e.g. CarePlan")]
FhirId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]


def supported(resource_type: str) -> str:
    if resource_type not in SEARCH_PARAMS:
        raise NotFound(f"resource type {resource_type!r} is not supported here")
    return resource_type


def _base(request: Request) -> str:
    return str(request.app.state.settings.public_base_url).rstrip("/") + "/fhir"


def _full_url(request: Request, resource_type: str, resource_id: str) -> str:
    return f"{_base(request)}/{resource_type}/{resource_id}"


@router.post("/{resource_type}/$validate")
async def validate_resource(
    request: Request,
    resource_type: ResourceType,
    principal: FhirPrincipalDep,
    profile: Annotated[str | None, Query(description="Canonical URL of one profile")] = None,
) -> Response:
    """Check a resource against the profiles; nothing is stored."""
    supported(resource_type)
    note_access(request, AccessFacts("operation", resource_type, agent=principal.subject))
    principal.compartment(resource_type, Interaction.read)  # any access to the type will do
    outcome = validation.validate(await request.body(), resource_type, profile)
    return Response(orjson.dumps(outcome), media_type=FHIR_JSON_UTF8)


@router.put("/{resource_type}/{resource_id}")
async def update(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    session: SessionDep,
    principal: FhirPrincipalDep,
) -> Response:
    """A new version of a case's Goal or ServiceRequest (see `updates`)."""
    supported(resource_type)
    note_access(request, AccessFacts("update", resource_type, resource_id, agent=principal.subject))
    return await _update(request, session, principal, resource_type, resource_id)


@router.put("/{resource_type}")
async def conditional_update(
    request: Request, resource_type: ResourceType, session: SessionDep, principal: FhirPrincipalDep
) -> Response:
    """`PUT Type?identifier=system|value`: the update of the one resource that matches."""
    supported(resource_type)
    facts = note_access(request, AccessFacts("update", resource_type, agent=principal.subject))
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "_format"]
    resource_id = await updates.resolve_conditional(session, resource_type, query)
    facts.resource_id = resource_id
    return await _update(request, session, principal, resource_type, resource_id)


async def _update(
    request: Request,
    session: SessionDep,
    principal: FhirPrincipal,
    resource_type: str,
    resource_id: str,
) -> Response:
    row = await updates.update_resource(
        session,
        principal,
        resource_type,
        resource_id,
        await request.body(),
        request.headers.get("if-match"),
    )
    return _written(request, row, 200, "updated")


@router.post("/{resource_type}")
async def create(
    request: Request, resource_type: ResourceType, session: SessionDep, principal: FhirPrincipalDep
) -> Response:
    """Create (a CarePlan opens a case; see `creates`), conditional with `If-None-Exist`."""
    supported(resource_type)
    facts = note_access(request, AccessFacts("create", resource_type, agent=principal.subject))
    result = await creates.create_resource(
        session,
        principal,
        resource_type,
        await request.body(),
        request.headers.get("if-none-exist"),
    )
    facts.resource_id = result.row.id
    if result.created:
        return _written(request, result.row, 201, "created")
    return _written(request, result.row, 200, "an existing resource matches If-None-Exist")


@router.delete("/{resource_type}/{resource_id}")
async def delete(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    session: SessionDep,
    principal: FhirPrincipalDep,
) -> Response:
    """Withdraw a proposed goal or a draft referral from its case (see `deletes`)."""
    supported(resource_type)
    note_access(request, AccessFacts("delete", resource_type, resource_id, agent=principal.subject))
    row = await deletes.delete_resource(session, principal, resource_type, resource_id)
    if row.patient_id:
        request.state.audit.patient_ids.add(row.patient_id)
    headers = {"ETag": version_headers(row.version_id, row.last_updated)["ETag"]}
    if "return=OperationOutcome" in request.headers.get("prefer", "").replace(" ", ""):
        return Response(
            orjson.dumps(_information(f"{resource_type}/{resource_id} deleted")),
            media_type=FHIR_JSON_UTF8,
            headers=headers,
        )
    return Response(status_code=204, headers=headers)


def _information(text: str) -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": text}],
    }


def _written(request: Request, row: StoredResource, status: int, what: str) -> Response:
    """The answer to a write, shaped by `Prefer: return=minimal|representation|OperationOutcome`
    (representation is the default)."""
    if row.patient_id:
        request.state.audit.patient_ids.add(row.patient_id)
    headers = version_headers(row.version_id, row.last_updated)
    headers["Location"] = f"{_base(request)}/{row.resource_type}/{row.id}/_history/{row.version_id}"
    prefer = request.headers.get("prefer", "").replace(" ", "")
    if "return=minimal" in prefer:
        return Response(status_code=status, headers=headers)
    if "return=OperationOutcome" in prefer:
        return Response(
            orjson.dumps(_information(what)), status, media_type=FHIR_JSON_UTF8, headers=headers
        )
    return Response(row.content, status, media_type=FHIR_JSON_UTF8, headers=headers)


@router.get("/{resource_type}/_history")
async def type_history(
    request: Request,
    resource_type: ResourceType,
    session: SessionDep,
    principal: FhirPrincipalDep,
    since: Annotated[str | None, Query(alias="_since")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(alias="_cursor")] = None,
) -> Response:
    supported(resource_type)
    note_access(request, AccessFacts("history-type", resource_type, agent=principal.subject))
    compartment = principal.compartment(resource_type, Interaction.read)
    return await _history(request, session, resource_type, None, since, count, cursor, compartment)


@router.get("/{resource_type}/{resource_id}")
async def read(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    database: DatabaseDep,
    principal: FhirPrincipalDep,
) -> Response:
    supported(resource_type)
    facts = note_access(
        request, AccessFacts("read", resource_type, resource_id, agent=principal.subject)
    )
    principal.compartment(resource_type, Interaction.read)  # 403 before revealing anything
    row = await reads.served(database, resource_type, resource_id)
    facts.patient_ids.update(filter(None, [row.patient_id]))
    principal.require(resource_type, Interaction.read, patient_id=row.patient_id)
    return resource_response(request, row.content, row.version_id, row.last_updated)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}")
async def vread(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    version_id: int,
    session: SessionDep,
    principal: FhirPrincipalDep,
) -> Response:
    supported(resource_type)
    facts = note_access(
        request, AccessFacts("vread", resource_type, resource_id, agent=principal.subject)
    )
    principal.compartment(resource_type, Interaction.read)
    latest = await session.get(StoredResource, (resource_type, resource_id))
    if latest is None:
        raise NotFound(f"{resource_type}/{resource_id} is not known")
    facts.patient_ids.update(filter(None, [latest.patient_id]))
    principal.require(resource_type, Interaction.read, patient_id=latest.patient_id)
    row = await reads.version(session, resource_type, resource_id, version_id)
    return resource_response(request, row.content, row.version_id, row.last_updated)


@router.get("/{resource_type}/{resource_id}/_history")
async def instance_history(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    session: SessionDep,
    principal: FhirPrincipalDep,
    since: Annotated[str | None, Query(alias="_since")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(alias="_cursor")] = None,
) -> Response:
    supported(resource_type)
    facts = note_access(
        request,
        AccessFacts("history-instance", resource_type, resource_id, agent=principal.subject),
    )
    principal.compartment(resource_type, Interaction.read)
    latest = await session.get(StoredResource, (resource_type, resource_id))
    if latest is None:
        raise NotFound(f"{resource_type}/{resource_id} is not known")
    facts.patient_ids.update(filter(None, [latest.patient_id]))
    principal.require(resource_type, Interaction.read, patient_id=latest.patient_id)
    return await _history(request, session, resource_type, resource_id, since, count, cursor, None)


async def _history(
    request: Request,
    session: SessionDep,
    resource_type: str,
    resource_id: str | None,
    since: str | None,
    count: int,
    cursor: str | None,
    compartment: str | None,
) -> Response:
    try:
        since_at = date_range(since)[0] if since else None
    except ValueError as exc:
        raise BadRequest(
            f"_since={since} is not a FHIR instant", extra={"expression": ["_since"]}
        ) from exc
    before = None
    if cursor is not None:
        moment, last_id, last_version = decode_cursor(cursor)
        before = (dt.datetime.fromisoformat(moment), str(last_id), int(last_version))
    rows = await reads.history(
        session,
        resource_type,
        resource_id,
        since=since_at,
        count=count,
        before=before,
        compartment=compartment,
    )
    page = rows[:count]
    path = f"{_base(request)}/{resource_type}" + (f"/{resource_id}" if resource_id else "")
    query = {k: v for k, v in (("_since", since), ("_count", str(count))) if v}
    links = {"self": f"{path}/_history?{urlencode(query)}"}
    if len(rows) > count:
        last = page[-1]
        token = encode_cursor([last.last_updated.isoformat(), last.id, last.version_id])
        links["next"] = f"{path}/_history?{urlencode(query | {'_cursor': token})}"
    return bundle_response(
        bundle_bytes("history", (_history_entry(request, v) for v in page), links=links)
    )


def _history_entry(request: Request, row: ResourceVersion) -> Entry:
    url = f"{row.resource_type}/{row.id}"
    if row.deleted:
        method, status = "DELETE", "204 No Content"
    elif row.version_id == 1:
        method, status = "POST", "201 Created"
    else:
        method, status = "PUT", "200 OK"
    return Entry(
        full_url=_full_url(request, row.resource_type, row.id),
        content=None if row.deleted else row.content,
        method=method,
        url=url if method != "POST" else row.resource_type,
        status=status,
    )


@router.get("/{resource_type}")
async def search(
    request: Request,
    resource_type: ResourceType,
    database: DatabaseDep,
    principal: FhirPrincipalDep,
) -> Response:
    return await _search(
        request, resource_type, list(request.query_params.multi_items()), database, principal
    )


@router.post("/{resource_type}/_search")
async def search_by_post(
    request: Request,
    resource_type: ResourceType,
    database: DatabaseDep,
    principal: FhirPrincipalDep,
) -> Response:
    form = await request.form()
    query = list(request.query_params.multi_items()) + [
        (k, v) for k, v in form.multi_items() if isinstance(v, str)
    ]
    return await _search(request, resource_type, query, database, principal)


async def _search(
    request: Request,
    resource_type: str,
    query: list[tuple[str, str]],
    database: Database,
    principal: FhirPrincipal,
) -> Response:
    supported(resource_type)
    facts = note_access(
        request,
        AccessFacts("search-type", resource_type, query=urlencode(query), agent=principal.subject),
    )
    compartment = principal.compartment(resource_type, Interaction.search)
    strict = "handling=strict" in request.headers.get("prefer", "").replace(" ", "")
    search_request = parse_search(resource_type, query, strict=strict)
    # A plain connection, like reads: a search writes nothing and needs no ORM session.
    async with database.engine.connect() as connection:
        rows, total = await reads.search_page(connection, search_request, compartment)
        page = rows[: search_request.count]
        included = await _included(connection, search_request, page, principal)
    self_url = f"{_base(request)}/{resource_type}?{urlencode(search_request.used)}"
    links = {"self": self_url}
    if len(rows) > search_request.count:
        token = cursor_after(page[-1], search_request)
        links["next"] = f"{self_url}&{urlencode({'_cursor': token})}"
    entries = [
        Entry(_full_url(request, r.resource_type, r.id), r.content, search_mode="match")
        for r in page
    ]
    entries += [
        Entry(_full_url(request, r.resource_type, r.id), r.content, search_mode="include")
        for r in included
    ]
    facts.patient_ids.update(r.patient_id for r in [*page, *included] if r.patient_id)
    return bundle_response(bundle_bytes("searchset", entries, links=links, total=total))


async def _included(
    connection: AsyncConnection,
    request: SearchRequest,
    matches: Sequence[Match],
    principal: FhirPrincipal,
) -> list[Match]:
    """Resources named by `_include` and `_revinclude`, those the caller may read only."""
    ids = [r.id for r in matches]
    keys: set[tuple[str, str]] = set()
    for include in request.includes:
        for reference in await reads.referenced(
            connection, include.source, include.param.name, ids
        ):
            target_type, _, target_id = reference.rpartition("/")
            if include.target in (None, target_type) and target_type in SEARCH_PARAMS:
                keys.add((target_type, target_id))
    targets = [f"{request.resource_type}/{i}" for i in ids]
    for include in request.revincludes:
        for source_id in await reads.referring(
            connection, include.source, include.param.name, targets
        ):
            keys.add((include.source, source_id))
    keys -= {(request.resource_type, i) for i in ids}
    return [r for r in await reads.by_keys(connection, keys) if _may_read(principal, r)]


def _may_read(principal: FhirPrincipal, row: Match) -> bool:
    if not principal.allows(row.resource_type, Interaction.read):
        return False
    confined = principal.compartment(row.resource_type, Interaction.read)
    return confined is None or row.patient_id == confined


@router.post("")
async def transaction_or_batch(
    request: Request, database: DatabaseDep, principal: FhirPrincipalDep
) -> Response:
    """A transaction Bundle that carries one case (see `transactions`), or a batch of
    independent interactions (see `batches`)."""
    bundle = json_body(await request.body())
    if isinstance(bundle, dict) and bundle.get("type") == "batch":
        note_access(request, AccessFacts("batch", agent=principal.subject))
        # No session is held here: each entry opens its own (on SQLite, a held write
        # transaction would make the entries wait for it forever).
        return bundle_response(await process_batch(request, bundle, _base(request)))
    note_access(request, AccessFacts("transaction", agent=principal.subject))
    async with database.unit_of_work() as session:
        content = await process_transaction(session, principal, bundle, _base(request))
    return bundle_response(content)
