"""Notes are lists of Annotation (FHIR R4 §2.24.0.7; `note` 0..*), merged annotation by
annotation: an addition on either side is no conflict; only an annotation deleted or edited on
both sides differently is."""

from __future__ import annotations

from typing import Any

from service.push.merge import merge_annotations, rebase_local_changes, three_way_merge

PLANNER = {"id": "outcome-note", "text": "Seen twice; bathing with a shower chair."}
RECEIVER = {"text": "First visit booked.", "time": "2026-12-01T10:00:00Z", "authorString": "RN"}
SR = {"resourceType": "ServiceRequest", "status": "active", "intent": "order"}


def notes(*annotations: dict[str, Any]) -> dict[str, Any]:
    return SR | {"note": list(annotations)}


def test_a_note_added_on_each_side_keeps_both() -> None:
    merged = three_way_merge(SR, notes(PLANNER), notes(RECEIVER))
    assert merged.conflicts == []
    assert merged.merged["note"] == [PLANNER, RECEIVER]
    # The EHR's note is an EHR edit the case is offered, like any element only it changed.
    assert merged.taken_from_theirs == ["note"]


def test_appends_on_both_sides_to_a_shared_list() -> None:
    first = {"text": "Referral sent.", "time": "2026-11-30T09:00:00Z"}
    merged = three_way_merge(notes(first), notes(first, PLANNER), notes(first, RECEIVER))
    assert merged.conflicts == []
    assert merged.merged["note"] == [first, PLANNER, RECEIVER]


def test_the_same_note_added_on_both_sides_is_one_note() -> None:
    assert merge_annotations([], [RECEIVER], [RECEIVER]) == [RECEIVER]


def test_a_deletion_on_one_side_is_taken_while_the_other_appends() -> None:
    old = {"text": "Old remark", "authorString": "RN"}
    assert merge_annotations([old], [], [old, RECEIVER]) == [RECEIVER]
    assert merge_annotations([old], [old, PLANNER], []) == [PLANNER]


def test_our_edit_of_our_note_meets_their_append() -> None:
    edited = PLANNER | {"text": "Bathing independently now."}
    merged = three_way_merge(notes(PLANNER), notes(edited), notes(PLANNER, RECEIVER))
    assert merged.conflicts == []
    assert merged.merged["note"] == [edited, RECEIVER]


def test_an_annotation_changed_differently_on_both_sides_is_a_conflict() -> None:
    ours = PLANNER | {"text": "Ours"}
    theirs = PLANNER | {"text": "Theirs"}
    assert merge_annotations([PLANNER], [ours], [theirs]) is None
    assert three_way_merge(notes(PLANNER), notes(ours), notes(theirs)).conflicts == ["note"]
    # Deleted on one side, edited on the other: a conflict, not a silent loss.
    assert merge_annotations([PLANNER], [], [theirs]) is None


def test_annotations_without_an_id_are_told_apart_by_text_time_and_author() -> None:
    by_rn = {"text": "Called", "time": "2026-12-01T10:00:00Z", "authorString": "RN"}
    by_sw = by_rn | {"authorString": "SW"}
    later = by_rn | {"time": "2026-12-02T10:00:00Z"}
    assert merge_annotations([by_rn], [by_rn, by_sw], [by_rn, later]) == [by_rn, by_sw, later]
    # An extension changed on an annotation both keep, differently: the same annotation.
    one = by_rn | {"extension": [{"url": "u", "valueString": "1"}]}
    two = by_rn | {"extension": [{"url": "u", "valueString": "2"}]}
    assert merge_annotations([by_rn], [one], [two]) is None


def test_all_notes_deleted_on_both_sides_leaves_no_element() -> None:
    merged = three_way_merge(notes(PLANNER), notes(), SR)
    assert merged.conflicts == []
    assert "note" not in merged.merged


def test_a_rebase_keeps_the_ehr_notes_already_pushed() -> None:
    """A local edit of the case's note, rebased onto what was pushed (which holds the EHR's
    note, merged in earlier): the EHR's note stays."""
    edited = PLANNER | {"text": "Bathing independently now."}
    body = rebase_local_changes(notes(PLANNER, RECEIVER), notes(PLANNER), notes(edited))
    assert body["note"] == [edited, RECEIVER]
