"""A ServiceRequest's notes are a list (R4 `ServiceRequest.note` 0..* Annotation): the case owns
one of them, its outcome note (the annotation with the case's id); the receiver's and the EHR's
notes beside it are kept, also when the case changes its outcome note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from mappings.canonical import OUTCOME_NOTE_ID
from mappings.from_fhir import import_service_request
from mappings.from_fhir.service_request import outcome_note
from mappings.to_fhir.service_request import service_request_resource

GOLDEN = Path(__file__).parent / "golden" / "social_work" / "ServiceRequest-sr-transport.json"
RECEIVER = {"text": "Rides booked.", "time": "2026-12-01T10:00:00Z", "authorString": "Ride Co"}


def referral(*notes: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = orjson.loads(GOLDEN.read_bytes())
    resource.pop("note", None)
    return resource | ({"note": list(notes)} if notes else {})


def test_the_outcome_note_is_the_annotation_with_the_case_id() -> None:
    ours = {"id": OUTCOME_NOTE_ID, "text": "Waitlisted."}
    assert outcome_note([RECEIVER, ours]) == "Waitlisted."
    assert outcome_note([ours, RECEIVER]) == "Waitlisted."
    # Written before the case's notes had an id: a lone annotation of text alone.
    assert outcome_note([{"text": "Waitlisted."}]) == "Waitlisted."
    # The receiver's note is not the case's, alone or not.
    assert outcome_note([RECEIVER]) is None
    assert outcome_note([{"text": "a"}, {"text": "b"}]) is None
    assert outcome_note(None) is None


def test_the_receivers_note_is_kept_when_the_outcome_note_changes() -> None:
    ours = {"id": OUTCOME_NOTE_ID, "text": "Waitlisted."}
    imported = import_service_request(referral(ours, RECEIVER))
    record, context = imported.record, imported.context
    assert record.outcome_note == "Waitlisted."
    # Re-exported as received while the case's note is unchanged.
    assert service_request_resource(record, context)["note"] == [ours, RECEIVER]

    changed = record.model_copy(update={"outcome_note": "Rides started."})
    assert service_request_resource(changed, context)["note"] == [
        {"id": OUTCOME_NOTE_ID, "text": "Rides started."},
        RECEIVER,
    ]
    cleared = record.model_copy(update={"outcome_note": None})
    assert service_request_resource(cleared, context)["note"] == [RECEIVER]


def test_a_received_note_that_is_not_the_cases_stays_beside_a_new_outcome_note() -> None:
    imported = import_service_request(referral(RECEIVER))
    assert imported.record.outcome_note is None
    changed = imported.record.model_copy(update={"outcome_note": "Rides started."})
    assert service_request_resource(changed, imported.context)["note"] == [
        {"id": OUTCOME_NOTE_ID, "text": "Rides started."},
        RECEIVER,
    ]
