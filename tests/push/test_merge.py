"""Three-way merge element by element, rebasing local changes onto what was pushed, and the
remote form of a stored resource."""

from __future__ import annotations

from service.ehr.client import WriteResult
from service.push.merge import rebase_local_changes, three_way_merge
from service.push.remote_form import remote_form
from service.push.writes import _identity

BASE = {"resourceType": "CarePlan", "status": "active", "title": "A", "note": [{"text": "n"}]}


def test_one_sided_changes_merge_and_two_sided_ones_conflict() -> None:
    ours = BASE | {"title": "B"}
    theirs = BASE | {"description": "from the EHR", "note": [{"text": "m"}]}
    merged = three_way_merge(BASE, ours, theirs)
    assert merged.conflicts == []
    assert merged.merged == BASE | {
        "title": "B",
        "description": "from the EHR",
        "note": [{"text": "m"}],
    }
    assert sorted(merged.taken_from_theirs) == ["description", "note"]

    clash = three_way_merge(BASE, BASE | {"title": "B"}, BASE | {"title": "C"})
    assert clash.conflicts == ["title"]


def test_the_same_change_on_both_sides_and_removals() -> None:
    both = three_way_merge(BASE, BASE | {"title": "B"}, BASE | {"title": "B"})
    assert both.conflicts == []
    assert both.merged["title"] == "B"
    removed_there = {k: v for k, v in BASE.items() if k != "note"}
    assert "note" not in three_way_merge(BASE, BASE, removed_there).merged
    # Removed on one side, changed on the other: a conflict, not a silent loss.
    described = BASE | {"description": "d"}
    without = {k: v for k, v in described.items() if k != "description"}
    clash = three_way_merge(described, without, BASE | {"description": "e"})
    assert clash.conflicts == ["description"]


def test_server_owned_elements_are_not_compared_and_our_narrative_wins() -> None:
    ours = BASE | {"id": "local", "meta": {"profile": ["p"]}, "text": {"div": "ours"}}
    theirs = BASE | {"id": "r1", "meta": {"versionId": "7"}, "text": {"div": "theirs"}}
    merged = three_way_merge(BASE | {"text": {"div": "base"}}, ours, theirs)
    assert merged.conflicts == []
    assert merged.merged["meta"] == {"profile": ["p"]}
    assert merged.merged["text"] == {"div": "ours"}
    assert "id" not in merged.merged


def test_local_changes_are_rebased_onto_what_was_pushed() -> None:
    pushed = BASE | {"description": "merged in from the EHR"}
    then = BASE
    now = BASE | {"title": "B"}
    assert rebase_local_changes(pushed, then, now) == pushed | {"title": "B"}


def test_remote_form_maps_known_references_and_drops_unknown_ones() -> None:
    local = {
        "resourceType": "CarePlan",
        "id": "c1",
        "meta": {"versionId": "3", "lastUpdated": "x", "profile": ["p"]},
        "subject": {"reference": "Patient/local"},
        "addresses": [{"reference": "Condition/n1"}, {"reference": "Condition/n2"}],
        "goal": [{"reference": "Goal/g1"}],
        "extension": [{"url": "need", "valueReference": {"reference": "Condition/n2"}}],
        "careTeam": [{"reference": "CareTeam/t1", "display": "Team"}],
    }
    form = remote_form(local, {"Patient/local": "Patient/p9", "Condition/n1": "Condition/r1"})
    assert form.body == {
        "resourceType": "CarePlan",
        "meta": {"profile": ["p"]},
        "subject": {"reference": "Patient/p9"},
        "addresses": [{"reference": "Condition/r1"}],
        "careTeam": [{"display": "Team"}],
    }
    assert form.unresolved == {"Condition/n2", "Goal/g1", "CareTeam/t1"}


def test_the_remote_id_is_the_last_of_the_types_in_a_location() -> None:
    result = WriteResult(
        201,
        None,
        None,
        None,
        "https://ehr.example.org/api/FHIR/R4/Goal/abc-1/_history/3",
    )
    assert _identity("Goal", result) == ("abc-1", "3")
