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


@dataclass
class AccessFacts:
    """Set by a `/fhir` route on `request.state.audit` once it knows what was touched."""

    interaction: str
    resource_type: str | None = None
    resource_id: str | None = None
    patient_ids: set[str] = field(default_factory=set)
    query: str | None = None
    agent: str | None = None


def _outcome(status: int) -> str:
    """0 success, 4 minor failure (the client's fault), 8 serious failure (ours)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def audit_event(
    facts: AccessFacts, status: int, *, client_address: str | None, observer: str
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
        entities.append(
            {
                "what": {"reference": f"{facts.resource_type}/{facts.resource_id}"},
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    entities += [
        {
            "what": {"reference": f"Patient/{patient}"},
            "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        for patient in sorted(facts.patient_ids)
    ]
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
        "action": _ACTION.get(facts.interaction, "E"),
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
    if entities:
        event["entity"] = entities
    return event_id, recorded, event


def event_bytes(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
