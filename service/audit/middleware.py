"""Records an AuditEvent for every `/fhir` request and every `/api` read of patient data, and
commits it before the response goes out.

A `/fhir` change (create, update, delete, transaction, and each change of a batch's entries)
writes its record in the change's own transaction (`record_with_change`, called through the
engine's `keep` or `keep_entry`): one commit holds both, and if the record cannot be written
the change is rolled back and the caller (or the batch entry) gets 503. Every other request
(reads, searches, refused writes, a batch and its other entries) hands its record to
the group-commit writer (`AuditRecorder`) while its response's start is held; if the record
cannot be written, the caller gets an error instead of the result (503 for a read, which
changed nothing and may be retried; 500 for a write), as problem+json on `/api` and an
OperationOutcome on `/fhir`.

What was touched comes from the route (`note_access`, `note_patients`) or, on `/api`, from the
route template and its path parameters; who asked comes from the authentication dependency
(`request.state.audit_agent`, service/auth/deps.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem_response
from service.audit.events import AccessFacts, audit_event, event_bytes
from service.audit.recorder import (
    AuditEntry,
    AuditRecorder,
    AuditUnavailable,
    insert_audit_entries,
)
from service.audit.refusals import REACHED, fhir_target
from service.errors import ServiceUnavailable
from service.fhir_api.outcomes import is_fhir_path
from service.observability.request_ids import current_request_id

log = logging.getLogger(__name__)

UNAUDITED = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})
# `/api` reads of patient data: patients, their cases and everything recorded in a case, the
# records pulled from an EHR, and review items (which hold the EHR's and the case's values).
# (Route templates; a GET under one of these is audited.)
PATIENT_DATA_PREFIXES = ("/api/patients", "/api/cases", "/api/review-items")
PATIENT_DATA_TEMPLATES = frozenset(
    {"/api/connections/{connection_id}/patients/{patient_id}/records"}
)
SAFE_METHODS = frozenset({"GET", "HEAD"})


def note_access(request: Request, facts: AccessFacts) -> AccessFacts:
    """Tell the audit what this request touched (the route knows; the middleware does not)."""
    request.state.audit = facts
    return facts


def note_entry_access(request: Request, facts: AccessFacts, status: int) -> None:
    """An interaction inside this request (a batch entry), audited as its own event."""
    entries: list[tuple[AccessFacts, int]] = getattr(request.state, "audit_entries", [])
    entries.append((facts, status))
    request.state.audit_entries = entries


def note_patients(request: Request, patient_ids: set[str]) -> None:
    """Add the patients an `/api` read returned (a list or search) to its audit record."""
    noted: set[str] = getattr(request.state, "audit_patients", set())
    request.state.audit_patients = noted | patient_ids


def _default_facts(method: str, path: str) -> AccessFacts:
    resource_type, resource_id = fhir_target(path)
    interaction = {
        "GET": "read" if resource_id else "search-type",
        "POST": "create" if resource_type else "transaction",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(method, "operation")
    return AccessFacts(interaction, resource_type, resource_id)


def _api_template(scope: Scope) -> str | None:
    """The route template of an audited `/api` read, or None for anything else."""
    if scope["method"] not in SAFE_METHODS:
        return None
    route = scope.get("route")
    template: str | None = getattr(route, "path", None)
    if template is None:
        return None
    if template in PATIENT_DATA_TEMPLATES or template.startswith(PATIENT_DATA_PREFIXES):
        return template
    return None


def _api_facts(scope: Scope, template: str) -> AccessFacts:
    """An `/api` read: the last path segment names what was read (a case is served on `/fhir`
    as the CarePlan of the same id, so it is recorded as that CarePlan)."""
    params: dict[str, Any] = scope.get("path_params", {})
    state: dict[str, Any] = scope.get("state", {})
    segments = [s for s in template.split("/") if s]
    last = segments[-1]
    if last.startswith("{"):
        interaction, resource_id = "read", str(params.get(last.strip("{}"), ""))
        kind = segments[-2]
    else:
        interaction, resource_id, kind = "search-type", None, last
    resource_type = {"patients": "Patient", "cases": "CarePlan"}.get(kind, kind)
    patients = set(state.get("audit_patients", set()))
    if "patient_id" in params:
        patients.add(str(params["patient_id"]))
    facts = AccessFacts(
        interaction,
        resource_type,
        resource_id,
        patient_ids=patients,
        query=scope.get("query_string", b"").decode("latin-1") or None,
        agent=state.get("audit_agent"),
    )
    if "case_id" in params and kind != "cases":
        facts.entities.append(f"CarePlan/{params['case_id']}")
    return facts


async def _case_patient(scope: Scope, case_id: str) -> str | None:
    from service.cases.models import Case

    database = scope["app"].state.database
    async with database.sessions() as session:
        patient_id: str | None = await session.scalar(
            select(Case.patient_id).where(Case.id == case_id)
        )
    return patient_id


def _audit_entry(scope: Scope, status: int, facts: AccessFacts) -> AuditEntry:
    """The audit row of one interaction of the request in `scope`."""
    client = scope.get("client")
    event_id, recorded, event = audit_event(
        facts,
        status,
        client_address=client[0] if client else None,
        observer=scope["app"].state.settings.public_base_url,
        request_id=current_request_id(),
    )
    return AuditEntry(
        row={
            "id": event_id,
            "recorded_at": recorded,
            "agent": facts.agent or "unauthenticated",
            "action": event["action"],
            "interaction": facts.interaction,
            "resource_type": facts.resource_type,
            "resource_id": facts.resource_id,
            "status": status,
            "content": event_bytes(event),
        },
        patient_ids=tuple(sorted(facts.patient_ids)),
    )


async def record_with_change(
    request: Request, session: AsyncSession, facts: AccessFacts, status: int
) -> None:
    """Write the audit record of a change in the change's own transaction: they commit
    together or not at all (fail closed with no change left behind). Call `change_audited`
    once that transaction has committed, so the middleware does not record it again."""
    try:
        await insert_audit_entries(session, [_audit_entry(request.scope, status, facts)])
    except Exception as exc:
        # The type only: a database error's text carries the rows' parameters.
        log.error("refused a change whose audit failed: %s", type(exc).__name__)
        raise ServiceUnavailable(
            "the audit trail could not be written, so the change was not made; retry later"
        ) from exc


def change_audited(request: Request, status: int) -> None:
    """The request's own record, for an answer of `status`, committed with its change."""
    request.state.audit_committed = status


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/fhir", "/api/")) or path in UNAUDITED:
            await self.app(scope, receive, send)
            return
        # Audited here: the refusal audit (outside) leaves this request alone.
        scope.setdefault("state", {})[REACHED] = True
        fhir = is_fhir_path(path)
        held: Message | None = None
        refused = False

        async def send_after_audit(message: Message) -> None:
            nonlocal held, refused
            if refused:
                return  # the body of a response that was replaced by the audit failure
            if message["type"] == "http.response.start":
                template = None if fhir else _api_template(scope)
                if fhir or template is not None:
                    held = message
                    if not await self._record(scope, message["status"], template):
                        refused = True
                        await self._refuse(scope, receive, send)
                        return
            await send(message)

        try:
            await self.app(scope, receive, send_after_audit)
        except Exception:
            if held is None and (fhir or _api_template(scope) is not None):
                # No response was started: the error handler outside answers 500; record it.
                await self._record(scope, 500, None if fhir else _api_template(scope))
            raise

    async def _record(self, scope: Scope, status: int, template: str | None) -> bool:
        """Commit the request's audit record; False if it could not be written."""
        app = scope["app"]
        recorder: AuditRecorder | None = getattr(app.state, "audit_recorder", None)
        if recorder is None:
            return True
        state: dict[str, Any] = scope.get("state", {})
        try:
            # A batch's entries first, each its own event, then the batch itself; written
            # together, so they share one commit of the audit writer.
            entries = [
                await self._entry(scope, entry_status, None, entry_facts)
                for entry_facts, entry_status in state.get("audit_entries", ())
            ]
            if state.get("audit_committed") != status:
                entries.append(await self._entry(scope, status, template))
            await asyncio.gather(*(recorder.write(entry) for entry in entries))
        except AuditUnavailable as exc:
            log.error("refused %s %s: %s", scope["method"], template or "/fhir", exc)
            return False
        except Exception as exc:
            log.error("refused a request whose audit failed: %s", type(exc).__name__)
            return False
        return True

    @staticmethod
    async def _entry(
        scope: Scope, status: int, template: str | None, facts: AccessFacts | None = None
    ) -> AuditEntry:
        state: dict[str, Any] = scope.get("state", {})
        if facts is None and template is None:
            facts = state.get("audit") or _default_facts(scope["method"], scope["path"])
        elif facts is None:
            assert template is not None
            facts = _api_facts(scope, template)
            case_id = scope.get("path_params", {}).get("case_id")
            if case_id is not None:
                patient = await _case_patient(scope, str(case_id))
                if patient is not None:
                    facts.patient_ids.add(patient)
        return _audit_entry(scope, status, facts)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        read = scope["method"] in SAFE_METHODS
        status = 503 if read else 500
        detail = (
            "the audit trail could not be written, so the result is withheld; retry later"
            if read
            else "the audit trail could not be written (a batch's entries that changed something"
            " were applied, each with its own audit record)"
        )
        response = problem_response(
            status, "audit-unavailable", "Audit unavailable", detail, scope["path"]
        )
        if read:
            response.headers["Retry-After"] = "5"
        await response(scope, receive, send)
