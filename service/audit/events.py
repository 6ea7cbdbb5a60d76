"""What one `/fhir` interaction was, and the AuditEvent that records it (IHE Basic Audit Log
Patterns: RESTful interaction subtype, the client as requestor, this server as source, the
resource, the patient it concerns, and the query of a search)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.db.base import new_id

_ACTION = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "R",
    "search-type": "E",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "transaction": "E",
    "batch": "E",
    "operation": "E",
}
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
# IHE BALP: the X-Request-ID of the interaction goes in an entity of this type ("transaction").
_BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"


@dataclass
class AccessFacts:
    """Set by a `/fhir` route on `request.state.audit` once it knows what was touched."""

    interaction: str
    resource_type: str | None = None
    resource_id: str | None = None
    patient_ids: set[str] = field(default_factory=set)
    query: str | None = None
    agent: str | None = None
    # Further resources touched, as references ("CarePlan/<id>" of a case's record read).
    entities: list[str] = field(default_factory=list)
    # An `Idempotency-Key` replay of this interaction's stored answer: it discloses the answer
    # again and changes nothing, so its record is a read (action R) that says so.
    replay: bool = False

    def as_json(self) -> dict[str, Any]:
        """The facts as JSON, kept with a stored answer that may be served again."""
        return {
            "interaction": self.interaction,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "patient_ids": sorted(self.patient_ids),
            "query": self.query,
            "agent": self.agent,
            "entities": list(self.entities),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccessFacts:
        return cls(
            data["interaction"],
            data.get("resource_type"),
            data.get("resource_id"),
            patient_ids=set(data.get("patient_ids", ())),
            query=data.get("query"),
            agent=data.get("agent"),
            entities=list(data.get("entities", ())),
        )


@dataclass
class Disclosure:
    """What one answer disclosed, for its audit: the interaction's facts, and those of the
    entries audited as interactions of their own (a transaction's GET entries, a batch's
    entries that changed nothing), each with its status. Kept with an `Idempotency-Key`'s
    answer, so that a replay, which discloses it again, is audited as the first answer was."""

    facts: AccessFacts
    entries: list[tuple[AccessFacts, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "facts": self.facts.as_json(),
            "entries": [{"facts": f.as_json(), "status": s} for f, s in self.entries],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Disclosure:
        entries = [(AccessFacts.from_json(e["facts"]), int(e["status"])) for e in data["entries"]]
        return cls(AccessFacts.from_json(data["facts"]), entries)


@dataclass(frozen=True)
class AuditEntry:
    """One audit row (the `audit_events` columns) and the patients it concerns."""

    row: dict[str, Any]
    patient_ids: tuple[str, ...] = ()


def _outcome(status: int) -> str:
    """0 success, 4 minor failure (the client's fault), 8 serious failure (ours)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def request_id_entity(request_id: str) -> dict[str, Any]:
    """IHE BALP `entity:transaction`: the request id that ties the event to its log lines."""
    return {
        "what": {"identifier": {"value": request_id}},
        "type": {"system": _BALP_ENTITY_TYPE, "code": "XrequestId"},
    }


def _resource_entity(reference: str) -> dict[str, Any]:
    return {
        "what": {"reference": reference},
        "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
    }


def _patient_entity(patient_id: str) -> dict[str, Any]:
    return {
        "what": {"reference": f"Patient/{patient_id}"},
        "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
    }


def audit_event(
    facts: AccessFacts,
    status: int,
    *,
    client_address: str | None,
    observer: str,
    request_id: str | None = None,
) -> tuple[str, dt.datetime, dict[str, Any]]:
    event_id, recorded = new_id(), dt.datetime.now(dt.UTC)
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": _DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"identifier": {"value": facts.agent or "unauthenticated"}},
        "requestor": True,
    }
    if client_address:
        agent["network"] = {"address": client_address, "type": "2"}
    entities: list[dict[str, Any]] = []
    if facts.resource_type and facts.resource_id:
        entities.append(_resource_entity(f"{facts.resource_type}/{facts.resource_id}"))
    entities += [_resource_entity(reference) for reference in facts.entities]
    entities += [_patient_entity(patient) for patient in sorted(facts.patient_ids)]
    if facts.query is not None:
        entities.append(
            {
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": base64.b64encode(facts.query.encode()).decode(),
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "Restful Operation",
        },
        "subtype": [
            {"system": "http://hl7.org/fhir/restful-interaction", "code": facts.interaction}
        ],
        "action": "R" if facts.replay else _ACTION.get(facts.interaction, "E"),
        "recorded": recorded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": _outcome(status),
        "agent": [agent],
        "source": {
            "observer": {"display": observer},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
    }
    if status >= 400:
        event["outcomeDesc"] = f"HTTP {status}"
    if facts.replay:
        replayed = "the answer stored for its Idempotency-Key, replayed: nothing changed again"
        event["outcomeDesc"] = f"{event['outcomeDesc']}; {replayed}" if status >= 400 else replayed
    if request_id is not None:
        entities.append(request_id_entity(request_id))
    if entities:
        event["entity"] = entities
    return event_id, recorded, event


def transfer_event(
    *,
    kind: str,
    requestor: str,
    connection_id: str,
    resources: list[str],
    patient_ids: list[str],
    observer: str,
    failed: bool = False,
) -> tuple[str, dt.datetime, dict[str, Any]]:
    """A pull (DICOM 110107 Import, action C) or a push (110106 Export, action R): who asked,
    the EHR connection the data came from or went to, the resources and the patients
    (DICOM PS3.15 A.5.3.6 and A.5.3.7; IHE BALP leaves transfers to these)."""
    importing = kind == "pull"
    event_id, recorded = new_id(), dt.datetime.now(dt.UTC)
    remote_role = ("110153", "Source Role ID") if importing else ("110152", "Destination Role ID")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {
            "system": _DCM,
            "code": "110107" if importing else "110106",
            "display": "Import" if importing else "Export",
        },
        "action": "C" if importing else "R",
        "recorded": recorded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": "4" if failed else "0",
        "agent": [
            {"who": {"identifier": {"value": requestor}}, "requestor": True},
            {
                "type": {"coding": [{"system": _DCM, "code": remote_role[0]}]},
                "who": {"identifier": {"value": f"connection:{connection_id}"}},
                "requestor": False,
            },
        ],
        "source": {"observer": {"display": observer}},
        "entity": [
            *(_resource_entity(reference) for reference in resources),
            *(_patient_entity(patient) for patient in sorted(patient_ids)),
        ],
    }
    if not event["entity"]:
        del event["entity"]
    return event_id, recorded, event


def event_bytes(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
