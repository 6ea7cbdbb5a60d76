"""Audit of requests refused before they reached the audit middleware: the outer layers' `503`
(the in-flight bound), `429` (the /fhir rate limits) and `413` (the body size limit), and any
other error an outer layer answers on `/fhir` or `/api`.

Refusals are *aggregated*: one AuditEvent per (client or address, status, attempted
interaction, resource type) per `FLUSH_INTERVAL_SECONDS`, with the number refused, the first
and last time (`AuditEvent.period`) and the first and last request ids. Why not one record per
refusal, written before the answer as for every other request: these layers refuse *because*
the process is overloaded or a client is flooding it, and a database write per refused request
would turn each cheap refusal into the costly work the refusal exists to avoid (and a flood
would then fill the audit trail and the writer's queue, refusing real requests in turn). A
refused request disclosed and changed nothing, so its record need not be committed before its
answer. Neither DICOM PS3.15 A.5 nor IHE BALP defines an aggregated event; AuditEvent has no
count element, so the count travels as an `entity.detail` (FHIR R4 auditevent.html: `detail`
is "additional information about the entity"), and `outcome` is the R4 code of the refusal
(4 for 429 and 413, the client's; 8 for 503, ours). The tallies are written by the audit
writer (`AuditRecorder`, in its group commit); what a crash loses is at most one interval's
counts of refused requests. Distinct keys are capped per interval (`MAX_KEYS`): beyond it,
refusals from further addresses are counted under the address `*` (a flood from many
addresses must not exhaust memory)."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission.rate_limits import source_address, verified_client
from service.audit.events import AccessFacts, AuditEntry, audit_event, event_bytes
from service.fhir_store.search_params import SEARCH_PARAMS
from service.observability.request_ids import current_request_id

FLUSH_INTERVAL_SECONDS = 10.0
MAX_KEYS = 1000
# Set on the request's scope state by the audit middleware: a request that reached it is
# audited there, one record per request.
REACHED = "audit_reached"
_REASONS = {413: "body too large", 429: "rate limited", 503: "overloaded"}


@dataclass(frozen=True)
class RefusalKey:
    agent: str
    address: str | None
    status: int
    interaction: str
    resource_type: str | None


@dataclass
class Tally:
    count: int
    first: float  # epoch seconds
    last: float
    first_request_id: str | None
    last_request_id: str | None

    def merge(self, other: Tally) -> None:
        self.count += other.count
        if other.first < self.first:
            self.first, self.first_request_id = other.first, other.first_request_id
        if other.last > self.last:
            self.last, self.last_request_id = other.last, other.last_request_id


class RefusalTally:
    """Counts of refused requests since the last flush (one process)."""

    def __init__(self) -> None:
        self._tallies: dict[RefusalKey, Tally] = {}
        self.observer = "casebridge"

    def __len__(self) -> int:
        return len(self._tallies)

    def note(self, key: RefusalKey, request_id: str | None, now: float | None = None) -> None:
        """Count one refusal: a dictionary update, no I/O."""
        now = time.time() if now is None else now
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= MAX_KEYS:
                key = RefusalKey(key.agent, "*", key.status, key.interaction, key.resource_type)
                tally = self._tallies.get(key)
            if tally is None:
                self._tallies[key] = Tally(1, now, now, request_id, request_id)
                return
        tally.count += 1
        tally.last, tally.last_request_id = now, request_id

    def drain(self) -> dict[RefusalKey, Tally]:
        tallies, self._tallies = self._tallies, {}
        return tallies

    def restore(self, tallies: dict[RefusalKey, Tally]) -> None:
        """Put back tallies whose records could not be written, for the next flush."""
        for key, tally in tallies.items():
            if key in self._tallies:
                tally.merge(self._tallies[key])
            self._tallies[key] = tally

    def entries(self, tallies: dict[RefusalKey, Tally]) -> list[AuditEntry]:
        return [refusal_entry(key, tally, self.observer) for key, tally in tallies.items()]


def _instant(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def refusal_entry(key: RefusalKey, tally: Tally, observer: str) -> AuditEntry:
    """One AuditEvent for `tally.count` refusals of `key` (IHE BALP RESTful event shape)."""
    facts = AccessFacts(key.interaction, key.resource_type, agent=key.agent)
    event_id, recorded, event = audit_event(
        facts,
        key.status,
        client_address=None if key.address == "*" else key.address,
        observer=observer,
        request_id=tally.first_request_id,
    )
    reason = _REASONS.get(key.status, "refused")
    event["period"] = {"start": _instant(tally.first), "end": _instant(tally.last)}
    event["outcomeDesc"] = f"HTTP {key.status}: {tally.count} requests refused ({reason})"
    details: list[dict[str, Any]] = [
        {"type": "refused-count", "valueString": str(tally.count)},
        {"type": "reason", "valueString": reason},
    ]
    if tally.last_request_id is not None:
        details.append({"type": "last-request-id", "valueString": tally.last_request_id})
    if key.address == "*":
        details.append({"type": "source-addresses", "valueString": "several (over the cap)"})
    event.setdefault("entity", []).append(
        {
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "2",
                "display": "System Object",
            },
            "name": "refused requests",
            "detail": details,
        }
    )
    return AuditEntry(
        row={
            "id": event_id,
            "recorded_at": recorded,
            "agent": key.agent[:200],
            "action": event["action"],
            "interaction": key.interaction,
            "resource_type": key.resource_type,
            "resource_id": None,
            "status": key.status,
            "content": event_bytes(event),
        }
    )


FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # R4 datatypes.html#id


def fhir_target(path: str) -> tuple[str | None, str | None]:
    """The resource type and id a `/fhir` path names, for its audit record. The path is the
    client's: only a type this server serves and an id of FHIR's form are taken (the columns
    hold 40 and 64 characters, and a longer value would fail the whole audit batch)."""
    parts = [p for p in path.removeprefix("/fhir").split("/") if p]
    resource_type = parts[0] if parts and parts[0] in SEARCH_PARAMS else None
    resource_id = parts[1] if len(parts) > 1 and FHIR_ID.fullmatch(parts[1]) else None
    return resource_type, resource_id


def _attempted(method: str, path: str) -> tuple[str, str | None]:
    """The interaction a refused request attempted, and the resource type of a /fhir one."""
    if path.startswith("/api/"):
        return ("read" if method in ("GET", "HEAD") else "operation"), None
    resource_type, resource_id = fhir_target(path)
    interaction = {
        "GET": "read" if resource_id else "search-type",
        "HEAD": "read" if resource_id else "search-type",
        "POST": "create" if resource_type else "transaction",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(method, "operation")
    return interaction, resource_type


class RefusalAuditing:
    """Counts the error answers of requests that never reached the audit middleware (refused
    by a layer outside it). Sits outside those layers (inside the request id's)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/fhir", "/api/")):
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and message["status"] >= 400
                and not scope.get("state", {}).get(REACHED)
            ):
                _note(scope, message["status"])
            await send(message)

        await self.app(scope, receive, watched)


def _note(scope: Scope, status: int) -> None:
    app = scope["app"]
    recorder = getattr(app.state, "audit_recorder", None)
    if recorder is None:
        return
    tally: RefusalTally = recorder.refusals
    tally.observer = app.state.settings.public_base_url
    interaction, resource_type = _attempted(scope["method"], scope["path"])
    agent = verified_client(scope) if scope["path"].startswith("/fhir") else None
    key = RefusalKey(
        agent or "unauthenticated", source_address(scope), status, interaction, resource_type
    )
    tally.note(key, current_request_id())
