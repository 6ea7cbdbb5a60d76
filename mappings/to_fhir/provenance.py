"""One change of a case -> US Core Provenance.

The service writes one Provenance per committed change: its targets are the resources (with
their new versions, when known) that the change re-projected. The author is the person who made
the change (the case knows people by name only, so `who` is a display reference typed
Practitioner); the transmitter is CaseBridge itself, a logical reference by identifier.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mappings.canonical import (
    DATA_OPERATION,
    IDENTIFIER_SYSTEM,
    PROVENANCE_PARTICIPANT_TYPE,
    US_CORE_PROVENANCE_PARTICIPANT_TYPE,
    profiles_for,
)
from mappings.fhir_datatypes import JsonDict, compact, fhir_datetime, reference
from mappings.narrative import generated_narrative

ChangeActivity = Literal["CREATE", "UPDATE", "DELETE"]
ACTIVITY_DISPLAY: dict[str, str] = {"CREATE": "create", "UPDATE": "revise", "DELETE": "delete"}

CASEBRIDGE_AGENT: JsonDict = {
    "identifier": {"system": IDENTIFIER_SYSTEM["Organization"], "value": "casebridge"},
    "display": "CaseBridge",
}


@dataclass(frozen=True, slots=True)
class CaseChange:
    """What the service knows of one committed change."""

    id: str
    """The Provenance id (the service's change or outbox id)."""
    recorded_at: dt.datetime
    targets: Sequence[str]
    """`Type/id` or `Type/id/_history/vid` of every resource the change re-projected."""
    activity: ChangeActivity = "UPDATE"
    author: str | None = None
    """Who made the change, by name; None for a change made by the service itself."""
    reason: str | None = None


def author_agent(change: CaseChange) -> JsonDict:
    author_type = {
        "coding": [{"system": PROVENANCE_PARTICIPANT_TYPE, "code": "author", "display": "Author"}]
    }
    if change.author is None:
        return {"type": author_type, "who": CASEBRIDGE_AGENT}
    return {
        "type": author_type,
        "who": reference(display=change.author, type_="Practitioner"),
        "onBehalfOf": CASEBRIDGE_AGENT,
    }


TRANSMITTER_AGENT: JsonDict = {
    "type": {
        "coding": [
            {
                "system": US_CORE_PROVENANCE_PARTICIPANT_TYPE,
                "code": "transmitter",
                "display": "Transmitter",
            }
        ]
    },
    "who": CASEBRIDGE_AGENT,
}


def provenance_resource(change: CaseChange) -> JsonDict:
    if not change.targets:
        raise ValueError("a Provenance needs at least one target")
    return compact(
        resourceType="Provenance",
        id=change.id,
        meta={"profile": profiles_for("Provenance")},
        text=generated_narrative(
            f"Case change ({ACTIVITY_DISPLAY[change.activity]})",
            [("Recorded", fhir_datetime(change.recorded_at)), ("Author", change.author)],
            [("Targets", list(change.targets))],
        ),
        target=[{"reference": target} for target in change.targets],
        recorded=fhir_datetime(change.recorded_at),
        activity={
            "coding": [
                {
                    "system": DATA_OPERATION,
                    "code": change.activity,
                    "display": ACTIVITY_DISPLAY[change.activity],
                }
            ]
        },
        reason=[{"text": change.reason}] if change.reason else None,
        agent=[author_agent(change), TRANSMITTER_AGENT],
    )
