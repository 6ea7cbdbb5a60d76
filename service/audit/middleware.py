"""Records an AuditEvent for every `/fhir` request once its response has been sent, from the
facts the route noted (`note_access`) and the response status."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.audit.events import AccessFacts, audit_event, event_bytes
from service.audit.recorder import AuditEntry, AuditRecorder
from service.fhir_api.outcomes import is_fhir_path

UNAUDITED = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})


def note_access(request: Request, facts: AccessFacts) -> AccessFacts:
    """Tell the audit what this request touched (the route knows; the middleware does not)."""
    request.state.audit = facts
    return facts


def note_entry_access(request: Request, facts: AccessFacts, status: int) -> None:
    """An interaction inside this request (a batch entry), audited as its own event."""
    entries: list[tuple[AccessFacts, int]] = getattr(request.state, "audit_entries", [])
    entries.append((facts, status))
    request.state.audit_entries = entries


def _default_facts(method: str, path: str) -> AccessFacts:
    parts = [p for p in path.removeprefix("/fhir").split("/") if p]
    resource_type = parts[0] if parts else None
    resource_id = parts[1] if len(parts) > 1 and not parts[1].startswith("_") else None
    interaction = {
        "GET": "read" if resource_id else "search-type",
        "POST": "create" if resource_type else "transaction",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(method, "operation")
    return AccessFacts(interaction, resource_type, resource_id)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not is_fhir_path(path) or path in UNAUDITED:
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self._record(scope, status)

    @staticmethod
    def _record(scope: Scope, status: int) -> None:
        app = scope["app"]
        recorder: AuditRecorder | None = getattr(app.state, "audit_recorder", None)
        if recorder is None:
            return
        state = scope.get("state", {})
        for entry_facts, entry_status in state.get("audit_entries", ()):
            AuditMiddleware._record_facts(scope, recorder, entry_facts, entry_status)
        facts = state.get("audit") or _default_facts(scope["method"], scope["path"])
        AuditMiddleware._record_facts(scope, recorder, facts, status)

    @staticmethod
    def _record_facts(
        scope: Scope, recorder: AuditRecorder, facts: AccessFacts, status: int
    ) -> None:
        app = scope["app"]
        client = scope.get("client")
        event_id, recorded, event = audit_event(
            facts,
            status,
            client_address=client[0] if client else None,
            observer=app.state.settings.public_base_url,
        )
        recorder.record(
            AuditEntry(
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
        )
