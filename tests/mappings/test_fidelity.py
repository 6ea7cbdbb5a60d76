"""Fidelity rules of the mappings (docs/fidelity.md): dates, instants and decimals keep their
received form while the typed value is unchanged; narratives and meta by their rules; decimals
parsed and written exactly; every element not given back is named.

"The database" is simulated by what it does to a record: instants come back in UTC
(`UTCDateTime`) and a decimal may come back as a binary float (SQLite's NUMERIC).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from mappings import fhir_json
from mappings.case_model import GoalRecord, GoalTargetRecord, InterventionRecord
from mappings.from_fhir import import_goal, import_service_request
from mappings.lexical_forms import apply_lexical_forms, first_instant, lexical_forms
from mappings.to_fhir.goal import goal_resource
from mappings.to_fhir.service_request import service_request_resource
from mappings.unkept_elements import unkept_elements

SUBJECT = {"reference": "Patient/p-1"}
AUTHORED_DIV = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Written by the planner.</p></div>'


def referral(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": "sr-1",
        "status": "active",
        "intent": "order",
        "code": {"text": "Home physical therapy"},
        "subject": SUBJECT,
        **elements,
    }


def goal(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": "g-1",
        "lifecycleStatus": "active",
        "description": {"text": "Walk to the mailbox"},
        "subject": SUBJECT,
        **elements,
    }


def in_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC)


def stored_intervention(record: InterventionRecord) -> InterventionRecord:
    """The record as the database gives it back: instants in UTC."""
    return record.model_copy(
        update={
            "authored_at": in_utc(record.authored_at),
            "scheduled_start": in_utc(record.scheduled_start),
            "scheduled_end": in_utc(record.scheduled_end),
        }
    )


def round_trip_referral(resource: dict[str, Any]) -> dict[str, Any]:
    imported = import_service_request(resource)
    return service_request_resource(stored_intervention(imported.record), imported.context)


@pytest.mark.parametrize(
    "authored",
    ["2017", "2017-03", "2017-03-05", "2013-03-08T09:00:10+01:00", "2013-03-08T09:00:10.25-05:30"],
)
def test_authored_on_keeps_its_precision_and_offset(authored: str) -> None:
    assert round_trip_referral(referral(authoredOn=authored))["authoredOn"] == authored


def test_occurrence_period_keeps_offsets_and_precision_of_each_end() -> None:
    period = {"start": "2013-03-08T09:00:10+01:00", "end": "2013-04"}
    exported = round_trip_referral(referral(occurrencePeriod=period))
    assert exported["occurrencePeriod"] == period
    single = round_trip_referral(referral(occurrenceDateTime="2013-03-08T09:00:10-07:00"))
    assert single["occurrenceDateTime"] == "2013-03-08T09:00:10-07:00"


def test_a_changed_value_is_written_in_the_case_form() -> None:
    imported = import_service_request(referral(authoredOn="2013-03-08T09:00:10+01:00"))
    edited = imported.record.model_copy(
        update={"authored_at": dt.datetime(2013, 3, 9, 12, 0, tzinfo=dt.UTC)}
    )
    exported = service_request_resource(edited, imported.context)
    assert exported["authoredOn"] == "2013-03-09T12:00:00+00:00"


def test_goal_dates_keep_partial_precision() -> None:
    sent = goal(startDate="2017", target=[{"measure": {"text": "steps"}, "dueDate": "2027-02"}])
    imported = import_goal(sent)
    assert imported.record.start_date == dt.date(2017, 1, 1)
    exported = goal_resource(imported.record, imported.context)
    assert exported["startDate"] == "2017"
    assert exported["target"][0]["dueDate"] == "2027-02"
    moved = imported.record.model_copy(update={"start_date": dt.date(2018, 6, 1)})
    assert goal_resource(moved, imported.context)["startDate"] == "2018-06-01"


@pytest.mark.parametrize("text", ["1.50", "0.1000", "123456789012.123456", "2.0"])
def test_decimals_come_back_as_sent_even_through_a_float(text: str) -> None:
    body = (
        '{"resourceType":"Goal","id":"g-1","lifecycleStatus":"active",'
        '"description":{"text":"Walk"},"subject":{"reference":"Patient/p-1"},'
        '"target":[{"measure":{"text":"km"},"detailQuantity":{"value":' + text + "}}],"
        '"extension":[{"url":"https://example.org/x","valueDecimal":' + text + "}]}"
    )
    imported = import_goal(fhir_json.loads(body))
    record = imported.record
    assert record.target is not None
    quantity = record.target.detail_quantity
    assert quantity == Decimal(text)
    # What SQLite's NUMERIC gives back: the decimal of a binary float.
    through_float = Decimal(repr(float(text)))
    stored = record.model_copy(
        update={"target": record.target.model_copy(update={"detail_quantity": through_float})}
    )
    raw = fhir_json.dumps(goal_resource(stored, imported.context))
    assert f'"detailQuantity":{{"value":{text}}}'.encode() in raw
    assert f'"valueDecimal":{text}'.encode() in raw


def test_fhir_json_reads_decimals_exactly_and_refuses_non_numbers() -> None:
    parsed = fhir_json.loads(b'{"a": 1.50, "b": 7, "c": 1e2}')
    assert parsed == {"a": Decimal("1.50"), "b": 7, "c": Decimal("1e2")}
    assert fhir_json.dumps(parsed) == b'{"a":1.50,"b":7,"c":1E+2}'
    huge = b'{"valueDecimal":123456789012345678901234567890}'
    assert fhir_json.dumps(fhir_json.loads(huge)) == huge
    with pytest.raises(ValueError, match="NaN"):
        fhir_json.loads(b'{"a": NaN}')


def test_lexical_forms_are_written_back_only_on_the_same_value() -> None:
    forms = lexical_forms({"a": "2017-03-05", "b": {"c": ["2013-03-08T09:00:10+01:00"]}}, {})
    assert forms == {"/a": "2017-03-05", "/b/c/0": "2013-03-08T09:00:10+01:00"}
    same = {"a": "2017-03-05T00:00:00+00:00", "b": {"c": ["2013-03-08T08:00:10+00:00"]}}
    assert apply_lexical_forms(same, forms) == {
        "a": "2017-03-05",
        "b": {"c": ["2013-03-08T09:00:10+01:00"]},
    }
    other = {"a": "2017-03-06", "b": {"c": []}}
    assert apply_lexical_forms(other, forms) == other
    assert first_instant("2017-02-30") is None
    assert first_instant("not a date") is None


def _narrated(status: str) -> dict[str, Any]:
    return goal(text={"status": status, "div": AUTHORED_DIV})


@pytest.mark.parametrize("status", ["additional", "extensions"])
def test_an_authored_narrative_is_kept_even_after_the_case_changes(status: str) -> None:
    imported = import_goal(_narrated(status))
    assert goal_resource(imported.record, imported.context)["text"]["div"] == AUTHORED_DIV
    edited = imported.record.model_copy(update={"description": "Walk to the park"})
    assert goal_resource(edited, imported.context)["text"]["div"] == AUTHORED_DIV


@pytest.mark.parametrize("status", ["generated", "empty"])
def test_a_generated_narrative_is_kept_until_the_data_changes(status: str) -> None:
    imported = import_goal(_narrated(status))
    assert goal_resource(imported.record, imported.context)["text"]["div"] == AUTHORED_DIV
    edited = imported.record.model_copy(update={"description": "Walk to the park"})
    regenerated = goal_resource(edited, imported.context)["text"]
    assert regenerated["status"] == "generated"
    assert "Walk to the park" in regenerated["div"]


def test_no_narrative_sent_means_one_is_generated() -> None:
    imported = import_goal(goal())
    text = goal_resource(imported.record, imported.context)["text"]
    assert text["status"] == "generated"
    assert "Walk to the mailbox" in text["div"]


def test_the_senders_meta_is_kept_beside_the_stores() -> None:
    meta = {
        "versionId": "7",
        "lastUpdated": "2020-01-01T00:00:00Z",
        "profile": ["https://example.org/StructureDefinition/our-goal"],
        "tag": [{"system": "https://example.org/tags", "code": "from-ehr"}],
        "source": "https://ehr.example.org",
    }
    imported = import_goal(goal(meta=meta))
    exported = goal_resource(imported.record, imported.context)["meta"]
    assert exported["profile"][0] == meta["profile"][0]
    assert len(exported["profile"]) > 1  # CaseBridge's own profiles follow
    assert exported["tag"] == meta["tag"]
    assert exported["source"] == meta["source"]
    assert "versionId" not in exported


def test_unkept_elements_names_each_change_and_ignores_the_servers_own() -> None:
    sent = fhir_json.loads(
        b'{"resourceType":"Goal","id":"client-id","meta":{"versionId":"3"},'
        b'"lifecycleStatus":"active","note":[{"text":"a"},{"text":"b"}],'
        b'"target":[{"detailQuantity":{"value":1.50}}],"subject":{"display":"x"}}'
    )
    stored = fhir_json.loads(
        b'{"resourceType":"Goal","id":"server-id","meta":{"versionId":"1"},'
        b'"lifecycleStatus":"active","identifier":[{"value":"added"}],"note":[{"text":"a"}],'
        b'"target":[{"detailQuantity":{"value":1.5}}],"subject":{"display":"y"}}'
    )
    issues = unkept_elements(sent, stored)
    assert [i["expression"] for i in issues] == [
        ["Goal.note[1]"],
        ["Goal.target[0].detailQuantity.value"],
        ["Goal.subject.display"],
    ]
    assert {i["severity"] for i in issues} == {"warning"}
    assert unkept_elements(sent, sent) == []


def test_a_goal_target_round_trip_through_the_record_types() -> None:
    """The typed record itself is unchanged by the rules (the golden cases rely on it)."""
    record = GoalRecord(
        id="g-2",
        description="Walk",
        target=GoalTargetRecord(detail_quantity=Decimal("1.50"), due_date=dt.date(2027, 2, 15)),
    )
    assert record.target is not None
    assert str(record.target.detail_quantity) == "1.50"


@pytest.mark.parametrize("text", ["12345678901234567890.123456789", "0.1234567"])
def test_a_quantity_beyond_the_case_is_kept_verbatim_not_rounded(text: str) -> None:
    """The case holds NUMERIC(18, 6): a value beyond it is not mapped (PostgreSQL would refuse
    or round it), and the received target comes back exactly."""
    body = (
        '{"resourceType":"Goal","id":"g-1","lifecycleStatus":"active",'
        '"description":{"text":"Walk"},"subject":{"reference":"Patient/p-1"},'
        '"target":[{"measure":{"coding":[{"system":"http://loinc.org","code":"41953-1"}]},'
        '"detailQuantity":{"value":' + text + "}}]}"
    )
    imported = import_goal(fhir_json.loads(body))
    assert imported.record.target is not None
    assert imported.record.target.measure is not None
    assert imported.record.target.detail_quantity is None
    raw = fhir_json.dumps(goal_resource(imported.record, imported.context))
    assert f'"detailQuantity":{{"value":{text}}}'.encode() in raw
