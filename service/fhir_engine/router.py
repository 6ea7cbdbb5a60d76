"""The engine's entry point: `FhirEngine.handle(FhirRequest, FhirPrincipal) -> FhirOutcome`.

Modelled on medplum's `FhirRouter.handleRequest(req, repo)`: the interaction is chosen from the
request's shape (FHIR R4 http.html), the caller's SMART scopes are asked before anything is
revealed, and every typed error (`service.errors`) becomes an OperationOutcome here, in one
place. It knows no web framework: `/fhir` routes, batch entries and tests call it alike. Each
write runs in its own `database.transaction()`: the request boundary commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from mappings import fhir_json
from mappings.unkept_elements import unkept_elements
from service.audit.events import AccessFacts
from service.db.session import Database
from service.db.transient import transient_failure
from service.errors import (
    BadRequest,
    CaseBridgeError,
    Conflict,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    RuleViolation,
    UnprocessableEntity,
)
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_engine import creates, deletes, patches, updates, validation
from service.fhir_engine.batches import UnauditedFailure, process_batch, response_entry
from service.fhir_engine.bundles import Entry, bundle_bytes
from service.fhir_engine.request import FhirOutcome, FhirRequest
from service.fhir_engine.responses import (
    FHIR_JSON_UTF8,
    information,
    json_body,
    not_modified,
    outcome,
    outcome_of,
    version_headers,
)
from service.fhir_engine.transaction_bundles import process_transaction
from service.fhir_store import repository
from service.fhir_store.models import ResourceVersion, StoredResource
from service.fhir_store.search import (
    Match,
    SearchRequest,
    cursor_after,
    decode_cursor,
    encode_cursor,
    parse_search,
)
from service.fhir_store.search_params import SEARCH_PARAMS, date_range

log = logging.getLogger(__name__)

# FHIR R4 datatypes.html#id: 1-64 of letters, digits, '-' and '.'.
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Version ids are stored as 32-bit integers on both databases.
MAX_VERSION = 2**31 - 1
HISTORY_DEFAULT_COUNT = 50
HISTORY_MAX_COUNT = 500
FORM = "application/x-www-form-urlencoded"
# A domain rule (service/*/service.py) -> the FHIR element a write sets it with, so that a
# refusal names the element (FHIR R4 operationoutcome.html: issue.expression).
RULE_ELEMENTS = {
    "referral.complete.outcome": "ServiceRequest.status",
    "intervention.schedule.order": "ServiceRequest.occurrencePeriod",
    "goal.achieved.case-active": "Goal.achievementStatus",
    "patient.identifier.unique": "Patient.identifier",
    "case.status.transition": "CarePlan.status",
    "case.close.reason": "CarePlan.status",
    "case.closed.final": "CarePlan.status",
}


def interaction_of(request: FhirRequest) -> str:
    """The RESTful interaction code (http://hl7.org/fhir/restful-interaction) the request is."""
    method, operation = request.method, request.operation
    if operation == "metadata":
        return "operation"
    if request.resource_type is None:
        return "transaction"
    if method == "GET":
        if request.id is None:
            return "history-type" if operation == "_history" else "search-type"
        if operation == "_history":
            return "vread" if request.version is not None else "history-instance"
        return "read"
    if method == "POST":
        return {"_search": "search-type", "$validate": "operation"}.get(operation or "", "create")
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "operation")


def json_outcome(
    status: int, body: dict[str, object], headers: dict[str, str] | None = None
) -> FhirOutcome:
    return FhirOutcome(
        status, fhir_json.dumps(body), {"Content-Type": FHIR_JSON_UTF8, **(headers or {})}
    )


def error_outcome(error: CaseBridgeError) -> FhirOutcome:
    """The one place an error becomes an OperationOutcome response."""
    return json_outcome(error.status, outcome_of(error), dict(error.headers))


# Work a caller adds to a write's own transaction once its outcome is known (with its audit
# facts on `outcome.facts`): the HTTP edge stores an Idempotency-Key's answer and the change's
# audit record there, so they and the change commit together, or none of them does.
OutcomeKeeper = Callable[[AsyncSession, FhirOutcome], Awaitable[None]]


async def _kept(
    keep: OutcomeKeeper | None, session: AsyncSession, result: FhirOutcome, facts: AccessFacts
) -> None:
    if keep is not None:
        result.facts = facts
        await keep(session, result)
        result.kept = True


class FhirEngine:
    """One per database. `capability_statement` serves `metadata` (the HTTP layer builds it from
    its routes); without it, `metadata` is not served."""

    def __init__(
        self, database: Database, *, capability_statement: Callable[[], bytes] | None = None
    ) -> None:
        self.database = database
        self.settings = database.settings
        self.capability_statement = capability_statement

    async def handle(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        *,
        keep: OutcomeKeeper | None = None,
        keep_entry: OutcomeKeeper | None = None,
    ) -> FhirOutcome:
        """The outcome of one interaction; never raises a `CaseBridgeError`. `keep` runs in the
        transaction of a create, an update, a delete or a transaction Bundle, with its
        outcome, just before that transaction commits; `keep_entry` does the same in each
        change of a batch's entries (each its own transaction)."""
        facts = AccessFacts(
            interaction_of(request), request.resource_type, request.id, agent=principal.subject
        )
        try:
            result = await self._route(request, principal, facts, keep, keep_entry)
        except RuleViolation as error:
            element = RULE_ELEMENTS.get(error.rule)
            if element and element.split(".")[0] == request.resource_type:
                error.extra.setdefault("expression", [element])  # name what broke the rule
            result = error_outcome(error)
        except CaseBridgeError as error:
            result = error_outcome(error)
        except StaleDataError:
            # Another transaction updated the row between our read and our write.
            result = error_outcome(
                PreconditionFailed("another change to this record was committed first")
            )
        except IntegrityError:
            result = error_outcome(
                Conflict("the change collides with stored data (a unique key or a link)")
            )
        except DBAPIError as error:
            # A deadlock or the like: a 503 to retry (`service.db.transient`), a batch's entry
            # too; any other database error is a bug, and goes on to the 500 it was.
            if (transient := transient_failure(error)) is None:
                raise
            result = error_outcome(transient)
        result.facts = facts
        return result

    async def _route(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        facts: AccessFacts,
        keep: OutcomeKeeper | None = None,
        keep_entry: OutcomeKeeper | None = None,
    ) -> FhirOutcome:
        method, operation = request.method.upper(), request.operation
        if operation == "metadata":
            if method != "GET" or self.capability_statement is None:
                raise NotFound("metadata is served at GET [base]/metadata")
            return FhirOutcome(200, self.capability_statement(), {"Content-Type": FHIR_JSON_UTF8})
        if request.resource_type is None:
            if method != "POST":
                raise MethodNotAllowed(f"{method} [base] is not an interaction of this server")
            return await self._transaction_or_batch(request, principal, facts, keep, keep_entry)
        resource_type = supported(request.resource_type)
        if request.id is not None and not FHIR_ID.match(request.id):
            raise BadRequest(f"{request.id!r} is not a FHIR id", extra={"expression": ["id"]})
        if method in ("GET", "HEAD"):
            if request.id is None:
                if operation == "_history":
                    return await self._history(request, principal)
                if operation is not None:
                    raise NotFound(f"GET {resource_type}/{operation} is not served here")
                return await self._search(request, principal, facts, request.query)
            if operation == "_history":
                if request.version is not None:
                    return await self._vread(request, principal, facts)
                return await self._history(request, principal, facts)
            return await self._read(request, principal, facts)
        if method == "POST" and request.id is None:
            if operation == "_search":
                return await self._search(request, principal, facts, self._search_form(request))
            if operation == "$validate":
                return self._validate(request, principal)
            if operation is None:
                return await self._create(request, principal, facts, keep)
        if method == "PUT" and operation is None:
            return await self._update(request, principal, facts, keep)
        if method == "PATCH" and request.id is not None and operation is None:
            return await self._update(request, principal, facts, keep, patch=True)
        if method == "DELETE" and operation is None:
            return await self._delete(request, principal, facts, keep)
        raise MethodNotAllowed(f"{method} is not allowed on this {resource_type} URL")

    # --- reads -------------------------------------------------------------------------

    async def _read(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        facts: AccessFacts,
        connection: AsyncConnection | None = None,
    ) -> FhirOutcome:
        """A read; on `connection` when given (a transaction's GET entry)."""
        resource_type, resource_id = str(request.resource_type), str(request.id)
        principal.compartment(resource_type, Interaction.read)  # 403 before revealing anything
        if connection is None:
            row = await repository.served(self.database, resource_type, resource_id)
        else:
            row = await repository.served_on(connection, resource_type, resource_id)
        facts.patient_ids.update(filter(None, [row.patient_id]))
        principal.require(resource_type, Interaction.read, patient_id=row.patient_id)
        return _resource(request, row.content, row.version_id, row.last_updated)

    async def _vread(
        self, request: FhirRequest, principal: FhirPrincipal, facts: AccessFacts
    ) -> FhirOutcome:
        resource_type, resource_id = str(request.resource_type), str(request.id)
        version = str(request.version)
        if not version.isdigit():
            raise UnprocessableEntity(
                f"version {version!r} is not a version id of this server (a positive integer)",
                extra={"expression": ["version"]},
            )
        principal.compartment(resource_type, Interaction.read)
        async with self.database.transaction(write=False) as session:
            latest = await repository.latest(session, resource_type, resource_id)
            if latest is None:
                raise NotFound(f"{resource_type}/{resource_id} is not known")
            facts.patient_ids.update(filter(None, [latest.patient_id]))
            principal.require(resource_type, Interaction.read, patient_id=latest.patient_id)
            if int(version) > MAX_VERSION:
                raise NotFound(f"{resource_type}/{resource_id} has no version {version}")
            row = await repository.version(session, resource_type, resource_id, int(version))
        return _resource(request, row.content, row.version_id, row.last_updated)

    async def _history(
        self, request: FhirRequest, principal: FhirPrincipal, facts: AccessFacts | None = None
    ) -> FhirOutcome:
        """Instance history (with `facts`, whose patient the instance names) or type history
        (confined to the caller's compartment), newest first, paged by `_cursor`."""
        resource_type, resource_id = str(request.resource_type), request.id
        compartment = principal.compartment(resource_type, Interaction.read)
        params = dict(request.query)
        since, cursor = params.get("_since"), params.get("_cursor")
        count = _history_count(params.get("_count"))
        try:
            since_at = date_range(since)[0] if since else None
        except ValueError as exc:
            raise BadRequest(
                f"_since={since} is not a FHIR instant", extra={"expression": ["_since"]}
            ) from exc
        before = None
        if cursor is not None:
            before = _history_cursor(cursor)
        async with self.database.transaction(write=False) as session:
            if resource_id is not None:
                latest = await repository.latest(session, resource_type, resource_id)
                if latest is None:
                    raise NotFound(f"{resource_type}/{resource_id} is not known")
                if facts is not None:
                    facts.patient_ids.update(filter(None, [latest.patient_id]))
                principal.require(resource_type, Interaction.read, patient_id=latest.patient_id)
                compartment = None
            rows = await repository.history(
                session,
                resource_type,
                resource_id,
                since=since_at,
                count=count,
                before=before,
                compartment=compartment,
            )
        page = rows[:count]
        path = f"{request.base_url}/{resource_type}" + (f"/{resource_id}" if resource_id else "")
        query = {k: v for k, v in (("_since", since), ("_count", str(count))) if v}
        links = {"self": f"{path}/_history?{urlencode(query)}"}
        if len(rows) > count:
            last = page[-1]
            token = encode_cursor([last.last_updated.isoformat(), last.id, last.version_id])
            links["next"] = f"{path}/_history?{urlencode(query | {'_cursor': token})}"
        entries = (_history_entry(request.base_url, v) for v in page)
        return _bundle(bundle_bytes("history", entries, links=links))

    def _search_form(self, request: FhirRequest) -> list[tuple[str, str]]:
        """`POST Type/_search`: the query and the form-encoded body, together (FHIR R4
        http.html#3.1.0.8.1)."""
        content_type = (request.header("content-type") or FORM).split(";")[0].strip().lower()
        if not request.body:
            return list(request.query)
        if content_type != FORM:
            raise BadRequest(f"a _search body must be {FORM}")
        try:
            form = parse_qsl(request.body.decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"the _search body is not {FORM}") from exc
        return list(request.query) + form

    async def _search(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        facts: AccessFacts,
        query: Sequence[tuple[str, str]],
        held: AsyncConnection | None = None,
    ) -> FhirOutcome:
        """A search; on the `held` connection when given (a transaction's GET entry)."""
        resource_type = str(request.resource_type)
        facts.query = urlencode(list(query))
        compartment = principal.compartment(resource_type, Interaction.search)
        strict = "handling=strict" in request.prefers
        search_request = parse_search(resource_type, list(query), strict=strict)
        # A plain connection: a search writes nothing and needs no ORM session.
        async with _connection(self.database, held) as connection:
            rows, total = await repository.search_page(connection, search_request, compartment)
            page = rows[: search_request.count]
            included, left_out = await _included(
                connection, search_request, page, principal, self.settings.fhir_include_max
            )
        self_url = f"{request.base_url}/{resource_type}?{urlencode(search_request.used)}"
        links = {"self": self_url}
        if search_request.count and len(rows) > search_request.count:
            token = cursor_after(page[-1], search_request)
            links["next"] = f"{self_url}&{urlencode({'_cursor': token})}"
        base = request.base_url
        entries = [
            Entry(f"{base}/{r.resource_type}/{r.id}", r.content, search_mode="match") for r in page
        ]
        entries += [
            Entry(f"{base}/{r.resource_type}/{r.id}", r.content, search_mode="include")
            for r in included
        ]
        if left_out:
            warning = outcome(
                f"{left_out} more _include/_revinclude resources were left out of this page "
                f"(at most {self.settings.fhir_include_max} per page); ask for fewer matches "
                "per page (_count) to get them all",
                severity="warning",
                code="too-costly",
                expression=["_include", "_revinclude"],
            )
            entries.append(Entry(f"urn:uuid:{uuid.uuid4()}", orjson.dumps(warning), "outcome"))
        facts.patient_ids.update(r.patient_id for r in [*page, *included] if r.patient_id)
        return _bundle(bundle_bytes("searchset", entries, links=links, total=total))

    def _validate(self, request: FhirRequest, principal: FhirPrincipal) -> FhirOutcome:
        """`$validate`: check a resource against the profiles; nothing is stored."""
        resource_type = str(request.resource_type)
        principal.compartment(resource_type, Interaction.read)  # any access to the type will do
        profile = dict(request.query).get("profile")
        return json_outcome(200, validation.validate(request.body, resource_type, profile))

    # --- writes ------------------------------------------------------------------------

    async def _create(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        facts: AccessFacts,
        keep: OutcomeKeeper | None = None,
    ) -> FhirOutcome:
        resource_type = str(request.resource_type)
        async with self.database.unit_of_work() as session:
            result = await creates.create_resource(
                session,
                principal,
                resource_type,
                request.body,
                request.header("if-none-exist"),
            )
            facts.resource_id = result.row.id
            if result.created:
                written = _written(
                    request, facts, result.row, 201, "created", received=request.body
                )
            else:
                written = _written(
                    request, facts, result.row, 200, "an existing resource matches If-None-Exist"
                )
            await _kept(keep, session, written, facts)
        return written

    async def _update(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        facts: AccessFacts,
        keep: OutcomeKeeper | None = None,
        *,
        patch: bool = False,
    ) -> FhirOutcome:
        """`PUT`, or `PATCH` with a JSON Patch: applied to the current version, then the same
        path as a PUT (`patches`)."""
        resource_type = str(request.resource_type)
        body = request.body
        async with self.database.unit_of_work() as session:
            resource_id = request.id
            if resource_id is None:  # `PUT Type?identifier=system|value`
                query = [(k, v) for k, v in request.query if k != "_format"]
                resource_id = await updates.resolve_conditional(session, resource_type, query)
                facts.resource_id = resource_id
            if patch:
                body = await patches.patched_current(
                    session,
                    principal,
                    resource_type,
                    resource_id,
                    body,
                    request.header("content-type"),
                )
            row = await updates.update_resource(
                session,
                principal,
                resource_type,
                resource_id,
                body,
                request.header("if-match"),
            )
            written = _written(request, facts, row, 200, "updated", received=body)
            await _kept(keep, session, written, facts)
        return written

    async def _delete(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        facts: AccessFacts,
        keep: OutcomeKeeper | None = None,
    ) -> FhirOutcome:
        """`DELETE Type/id`, or `DELETE Type?params` (conditional: see `deletes`)."""
        resource_type = str(request.resource_type)
        async with self.database.unit_of_work() as session:
            resource_id = request.id
            if resource_id is None:
                query = [(k, v) for k, v in request.query if k != "_format"]
                facts.query = urlencode(query)
                resource_id = await deletes.resolve_conditional(
                    session, principal, resource_type, query
                )
            headers: dict[str, str] = {}
            if resource_id is None:
                what = f"no {resource_type} matches; nothing was deleted"
            else:
                facts.resource_id = resource_id
                row = await deletes.delete_resource(session, principal, resource_type, resource_id)
                facts.patient_ids.update(filter(None, [row.patient_id]))
                headers["ETag"] = version_headers(row.version_id, row.last_updated)["ETag"]
                what = f"{resource_type}/{resource_id} deleted"
            if "return=OperationOutcome" in request.prefers:
                result = json_outcome(200, information(what), headers)
            else:
                result = FhirOutcome(204, b"", headers)
            await _kept(keep, session, result, facts)
        return result

    async def _audit_failed_entry(
        self, entry: FhirRequest, principal: FhirPrincipal, keep_entry: OutcomeKeeper | None
    ) -> None:
        """The record of a batch entry that failed on the server (500, AuditEvent outcome 8),
        in a transaction of its own: the entry's own transaction has rolled back, with
        whatever record it held. If this one cannot be written either, the batch's audit
        takes its facts (`UnauditedFailure`)."""
        facts = AccessFacts(
            interaction_of(entry), entry.resource_type, entry.id, agent=principal.subject
        )
        if keep_entry is None:
            return
        try:
            async with self.database.transaction() as session:
                await keep_entry(session, FhirOutcome(500, facts=facts))
        except Exception as exc:
            raise UnauditedFailure(facts) from exc

    async def _transaction_or_batch(
        self,
        request: FhirRequest,
        principal: FhirPrincipal,
        facts: AccessFacts,
        keep: OutcomeKeeper | None = None,
        keep_entry: OutcomeKeeper | None = None,
    ) -> FhirOutcome:
        """A transaction Bundle that carries one case (see `transactions`), or a batch of
        independent interactions (see `batches`), each entry's change kept with `keep_entry`
        (the batch's own `keep` is not called: its entries commit one by one)."""
        bundle = json_body(request.body)
        if isinstance(bundle, dict) and bundle.get("type") == "batch":
            facts.interaction = "batch"
            # No session is held here: each entry opens its own (on SQLite, a held write
            # transaction would make the entries wait for it forever).

            changes: list[tuple[AccessFacts, int]] = []

            async def handle_entry(entry: FhirRequest, who: FhirPrincipal) -> FhirOutcome:
                try:
                    answer = await self.handle(entry, who, keep=keep_entry)
                except Exception:
                    await self._audit_failed_entry(entry, who, keep_entry)
                    raise
                if answer.kept and answer.facts is not None:  # committed with its record
                    changes.append((answer.facts, answer.status))
                return answer

            content, entry_facts = await process_batch(
                handle_entry, principal, request, bundle, self.settings.fhir_bundle_max_entries
            )
            result = _bundle(content)
            result.entry_facts = entry_facts
            result.kept_entry_facts = changes
            return result
        reads: list[tuple[AccessFacts, int]] = []
        async with self.database.unit_of_work() as session:

            async def read(entry: FhirRequest) -> dict[str, Any]:
                """A GET entry, as its own read or search (its own audit facts), on the
                transaction's connection: after the writes, it sees them."""
                entry_facts = AccessFacts(
                    interaction_of(entry), entry.resource_type, entry.id, agent=principal.subject
                )
                await session.project()  # the writes so far, stored and indexed
                await session.flush()
                connection = await session.connection()
                supported(str(entry.resource_type))
                if entry.id is not None:
                    answer = await self._read(entry, principal, entry_facts, connection)
                else:
                    answer = await self._search(
                        entry, principal, entry_facts, entry.query, connection
                    )
                reads.append((entry_facts, answer.status))
                return response_entry(answer, request.base_url)

            content = await process_transaction(
                session,
                principal,
                bundle,
                request.base_url,
                self.settings.fhir_bundle_max_entries,
                read,
            )
            result = _bundle(content)
            # Before `keep`: an Idempotency-Key's answer keeps what its GET entries disclosed.
            result.entry_facts = reads
            await _kept(keep, session, result, facts)
        return result


@asynccontextmanager
async def _connection(
    database: Database, held: AsyncConnection | None
) -> AsyncIterator[AsyncConnection]:
    """The connection a caller holds, or a plain one of its own."""
    if held is not None:
        yield held
        return
    async with database.engine.connect() as connection:
        yield connection


def supported(resource_type: str) -> str:
    if resource_type not in SEARCH_PARAMS:
        raise NotFound(f"resource type {resource_type!r} is not supported here")
    return resource_type


def _history_count(raw: str | None) -> int:
    if raw is None:
        return HISTORY_DEFAULT_COUNT
    if not raw.isdigit() or not 1 <= int(raw) <= HISTORY_MAX_COUNT:
        raise BadRequest(
            f"_count must be an integer from 1 to {HISTORY_MAX_COUNT}",
            extra={"expression": ["_count"]},
        )
    return int(raw)


def _history_cursor(cursor: str) -> tuple[dt.datetime, str, int]:
    decoded = decode_cursor(cursor)
    try:
        moment, last_id, last_version = decoded
        return dt.datetime.fromisoformat(moment), str(last_id), int(last_version)
    except (TypeError, ValueError) as exc:
        raise BadRequest("_cursor is not one this server issued") from exc


def _bundle(content: bytes) -> FhirOutcome:
    return FhirOutcome(200, content, {"Content-Type": FHIR_JSON_UTF8})


def _resource(
    request: FhirRequest, content: bytes, version_id: int, last_updated: dt.datetime
) -> FhirOutcome:
    headers = version_headers(version_id, last_updated)
    if not_modified(request.headers, version_id, last_updated):
        return FhirOutcome(304, b"", headers)
    return FhirOutcome(200, content, {"Content-Type": FHIR_JSON_UTF8, **headers})


def _written(
    request: FhirRequest,
    facts: AccessFacts,
    row: StoredResource,
    status: int,
    what: str,
    received: bytes | None = None,
) -> FhirOutcome:
    """The answer to a write, shaped by `Prefer: return=minimal|representation|OperationOutcome`
    (representation is the default; FHIR R4 http.html#3.1.0.5.1). The OperationOutcome warns
    about each element of the `received` body that the stored resource does not give back as
    sent (docs/fidelity.md)."""
    facts.patient_ids.update(filter(None, [row.patient_id]))
    headers = version_headers(row.version_id, row.last_updated)
    headers["Location"] = (
        f"{request.base_url}/{row.resource_type}/{row.id}/_history/{row.version_id}"
    )
    if "return=minimal" in request.prefers:
        return FhirOutcome(status, b"", headers)
    if "return=OperationOutcome" in request.prefers:
        body = information(what)
        if received is not None:
            body["issue"] += unkept_elements(
                fhir_json.loads(received), fhir_json.loads(row.content)
            )
        return json_outcome(status, body, headers)
    return FhirOutcome(status, row.content, {"Content-Type": FHIR_JSON_UTF8, **headers})


def _history_entry(base_url: str, row: ResourceVersion) -> Entry:
    url = f"{row.resource_type}/{row.id}"
    if row.deleted:
        method, status = "DELETE", "204 No Content"
    elif row.version_id == 1:
        method, status = "POST", "201 Created"
    else:
        method, status = "PUT", "200 OK"
    return Entry(
        full_url=f"{base_url}/{url}",
        content=None if row.deleted else row.content,
        method=method,
        url=url if method != "POST" else row.resource_type,
        status=status,
    )


async def _included(
    connection: AsyncConnection,
    request: SearchRequest,
    matches: Sequence[Match],
    principal: FhirPrincipal,
    at_most: int,
) -> tuple[list[Match], int]:
    """Resources named by `_include` and `_revinclude`, those the caller may read only, at most
    `at_most` of them; and how many were left out beyond that (FHIR R4 search.html#include
    lets a server limit them, saying so with an OperationOutcome)."""
    ids = [r.id for r in matches]
    keys: set[tuple[str, str]] = set()
    for include in request.includes:
        for reference in await repository.referenced(
            connection, include.source, include.param.name, ids
        ):
            target_type, _, target_id = reference.rpartition("/")
            if include.target in (None, target_type) and target_type in SEARCH_PARAMS:
                keys.add((target_type, target_id))
    targets = [f"{request.resource_type}/{i}" for i in ids]
    for include in request.revincludes:
        for source_id in await repository.referring(
            connection, include.source, include.param.name, targets
        ):
            keys.add((include.source, source_id))
    keys -= {(request.resource_type, i) for i in ids}
    kept = set(sorted(keys)[:at_most])
    found = [r for r in await repository.by_keys(connection, kept) if _may_read(principal, r)]
    return found, len(keys) - len(kept)


def _may_read(principal: FhirPrincipal, row: Match) -> bool:
    if not principal.allows(row.resource_type, Interaction.read):
        return False
    confined = principal.compartment(row.resource_type, Interaction.read)
    return confined is None or row.patient_id == confined
