"""Hand-broken variants of the official examples: each break is caught, at the right place.

Every case is checked against US Core 6.1.0 and 7.0.0, and each asserts the (code, expression)
of the issue; the unbroken example is clean (see test_us_core_examples), so each test can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from fhir_profiles.artifacts import us_core_profile_for
from fhir_profiles.checker import Issue, check, check_all
from tests.profiles.example_files import US_CORE_VERSIONS, example, where

JSON = dict[str, Any]


@dataclass(frozen=True)
class Break:
    example: str
    mutate: Callable[[JSON], object]
    code: str
    expression: str
    element_id: str | None = None
    message_part: str = ""


def _drop(key: str) -> Callable[[JSON], object]:
    return lambda resource: resource.pop(key)


def _set(key: str, value: Any) -> Callable[[JSON], object]:
    return lambda resource: resource.__setitem__(key, value)


def _second_assess_plan(plan: JSON) -> None:
    plan["category"].append(plan["category"][0])


def _careteam_category_instead_of_assess_plan(plan: JSON) -> None:
    plan["category"][0]["coding"][0]["code"] = "careteam"


def _narrative_without_div(plan: JSON) -> None:
    del plan["text"]["div"]


def _activity_with_reference_and_detail(plan: JSON) -> None:
    plan["activity"] = [
        {
            "reference": {"reference": "ServiceRequest/colonoscopy"},
            "detail": {"status": "scheduled", "kind": "ServiceRequest"},
        }
    ]


def _activity_detail_bad_status(plan: JSON) -> None:
    plan["activity"] = [{"detail": {"status": "planned"}}]


def _contained_not_referenced(plan: JSON) -> None:
    plan["contained"] = [{"resourceType": "Condition", "id": "p1", "subject": plan["subject"]}]


def _contained_in_contained(plan: JSON) -> None:
    inner = {"resourceType": "Goal", "id": "g"}
    plan["contained"] = [{"resourceType": "Condition", "id": "p1", "contained": [inner]}]
    plan["addresses"] = [{"reference": "#p1"}]


def _contained_with_version_id(plan: JSON) -> None:
    plan["contained"] = [{"resourceType": "Condition", "id": "p1", "meta": {"versionId": "2"}}]
    plan["addresses"] = [{"reference": "#p1"}]


def _two_descriptions(goal: JSON) -> None:
    goal["description"] = [goal["description"], {"text": "another"}]


def _target_detail_without_measure(goal: JSON) -> None:
    goal["target"][0]["detailQuantity"] = {"value": 92, "unit": "%"}


def _due_date_and_duration(goal: JSON) -> None:
    goal["target"][0]["dueDuration"] = {"value": 3, "unit": "mo"}


def _empty_target(goal: JSON) -> None:
    goal["target"].append({})


def _misspelt_reference(goal: JSON) -> None:
    goal["subject"]["referense"] = goal["subject"].pop("reference")


def _misspelt_code_in_coding(goal: JSON) -> None:
    goal["description"]["coding"] = [{"system": "http://snomed.info/sct", "cdoe": "1"}]


def _userselected_as_text(goal: JSON) -> None:
    goal["description"]["coding"] = [
        {"system": "http://snomed.info/sct", "code": "1", "userSelected": "yes"}
    ]


def _extension_with_value_and_extensions(goal: JSON) -> None:
    goal["subject"]["extension"] = [
        {"url": "http://example.org/x", "valueString": "a", "extension": [{"url": "y"}]}
    ]


def _abated_but_active(condition: JSON) -> None:
    condition["abatementDateTime"] = "2020-01-01"


def _entered_in_error_with_clinical_status(condition: JSON) -> None:
    condition["verificationStatus"]["coding"][0]["code"] = "entered-in-error"


def _unknown_clinical_status(condition: JSON) -> None:
    condition["clinicalStatus"]["coding"][0]["code"] = "smouldering"


def _extension_with_both(condition: JSON) -> None:
    condition["extension"][0]["extension"] = [{"url": "x", "valueString": "y"}]


def _participant_without_member(team: JSON) -> None:
    del team["participant"][0]["member"]


def _agent_without_who(provenance: JSON) -> None:
    del provenance["agent"][0]["who"]


def _transmitter_without_who(provenance: JSON) -> None:
    transmitter = {
        "type": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type",
                    "code": "transmitter",
                }
            ]
        },
    }
    provenance["agent"].append(transmitter)


def _entity_agent_without_who(provenance: JSON) -> None:
    provenance["entity"][0]["agent"] = [{"type": {"text": "copier"}}]


def _order_detail_without_code(request: JSON) -> None:
    del request["code"]
    request["orderDetail"] = [{"text": "weekly"}]


def _occurrence_twice(request: JSON) -> None:
    request["occurrencePeriod"] = {"start": "2021-11-20"}


def _goal_refers_to_a_contained_condition(plan: JSON) -> None:
    plan["contained"] = [{"resourceType": "Condition", "id": "c1", "subject": plan["subject"]}]
    plan["goal"] = [{"reference": "#c1"}]


def _subject_typed_as_practitioner(plan: JSON) -> None:
    plan["subject"] = {"type": "Practitioner", "identifier": {"value": "1"}}


def _date_out_of_calendar(goal: JSON) -> None:
    goal["target"][0]["dueDate"] = "2016-13-05"


BREAKS: dict[str, Break] = {
    # missing required elements
    "goal-lifecycle-status-missing": Break(
        "Goal-goal-1.json", _drop("lifecycleStatus"), "required", "Goal.lifecycleStatus"
    ),
    "careplan-subject-missing": Break(
        "CarePlan-colonoscopy.json", _drop("subject"), "required", "CarePlan.subject"
    ),
    "narrative-without-div": Break(
        "CarePlan-colonoscopy.json", _narrative_without_div, "required", "CarePlan.text.div"
    ),
    "backbone-participant-member-missing": Break(
        "CareTeam-example.json",
        _participant_without_member,
        "required",
        "CareTeam.participant[0].member",
    ),
    "backbone-agent-who-missing": Break(
        "Provenance-example-targeted-provenance.json",
        _agent_without_who,
        "required",
        "Provenance.agent[0].who",
    ),
    "content-reference-entity-agent-who-missing": Break(
        "Provenance-example-targeted-provenance.json",
        _entity_agent_without_who,
        "required",
        "Provenance.entity[0].agent[0].who",
    ),
    # max exceeded
    "goal-two-descriptions": Break(
        "Goal-goal-1.json", _two_descriptions, "structure", "Goal.description", "Goal.description"
    ),
    "choice-due-twice": Break(
        "Goal-goal-1.json", _due_date_and_duration, "structure", "Goal.target[0].due"
    ),
    "choice-occurrence-twice": Break(
        "ServiceRequest-foodpantry-referral.json",
        _occurrence_twice,
        "structure",
        "ServiceRequest.occurrence",
    ),
    "slice-max-assess-plan-twice": Break(
        "CarePlan-colonoscopy.json",
        _second_assess_plan,
        "structure",
        "CarePlan.category",
        "CarePlan.category:AssessPlan",
    ),
    "slice-child-transmitter-without-who": Break(
        "Provenance-example-targeted-provenance.json",
        _transmitter_without_who,
        "required",
        "Provenance.agent[1].who",
        "Provenance.agent:ProvenanceTransmitter.who",
    ),
    # pattern: the required slice is told apart by its patternCodeableConcept
    "pattern-assess-plan-missing": Break(
        "CarePlan-colonoscopy.json",
        _careteam_category_instead_of_assess_plan,
        "required",
        "CarePlan.category",
        "CarePlan.category:AssessPlan",
    ),
    # required bindings
    "binding-goal-lifecycle-status": Break(
        "Goal-goal-1.json",
        _set("lifecycleStatus", "done"),
        "code-invalid",
        "Goal.lifecycleStatus",
        message_part="http://hl7.org/fhir/ValueSet/goal-status",
    ),
    "binding-careplan-intent": Break(
        "CarePlan-colonoscopy.json",
        _set("intent", "directive"),
        "code-invalid",
        "CarePlan.intent",
    ),
    "binding-us-core-narrative-status": Break(
        "CarePlan-colonoscopy.json",
        lambda plan: plan["text"].__setitem__("status", "extensions"),
        "code-invalid",
        "CarePlan.text.status",
        message_part="us-core-narrative-status",
    ),
    "binding-backbone-activity-status": Break(
        "CarePlan-colonoscopy.json",
        _activity_detail_bad_status,
        "code-invalid",
        "CarePlan.activity[0].detail.status",
    ),
    "binding-codeable-concept": Break(
        "Condition-health-concern-example.json",
        _unknown_clinical_status,
        "code-invalid",
        "Condition.clinicalStatus.coding[0].code",
    ),
    # invariants (fhirpathpy)
    "invariant-gol-1": Break(
        "Goal-goal-1.json",
        _target_detail_without_measure,
        "invariant",
        "Goal.target[0]",
        message_part="gol-1",
    ),
    "invariant-cpl-3": Break(
        "CarePlan-colonoscopy.json",
        _activity_with_reference_and_detail,
        "invariant",
        "CarePlan.activity[0]",
        message_part="cpl-3",
    ),
    "invariant-con-4": Break(
        "Condition-health-concern-example.json",
        _abated_but_active,
        "invariant",
        "Condition",
        message_part="con-4",
    ),
    "invariant-con-5": Break(
        "Condition-health-concern-example.json",
        _entered_in_error_with_clinical_status,
        "invariant",
        "Condition",
        message_part="con-5",
    ),
    "invariant-prr-1": Break(
        "ServiceRequest-rehab.json",
        _order_detail_without_code,
        "invariant",
        "ServiceRequest",
        message_part="prr-1",
    ),
    "invariant-dom-2": Break(
        "CarePlan-colonoscopy.json",
        _contained_in_contained,
        "invariant",
        "CarePlan",
        message_part="dom-2",
    ),
    "invariant-dom-3": Break(
        "CarePlan-colonoscopy.json",
        _contained_not_referenced,
        "invariant",
        "CarePlan",
        message_part="dom-3",
    ),
    "invariant-dom-4": Break(
        "CarePlan-colonoscopy.json",
        _contained_with_version_id,
        "invariant",
        "CarePlan",
        message_part="dom-4",
    ),
    "invariant-ext-1-in-snapshot": Break(
        "Condition-health-concern-example.json",
        _extension_with_both,
        "invariant",
        "Condition.extension[0]",
        message_part="ext-1",
    ),
    "invariant-ext-1-inside-a-datatype": Break(
        "Goal-goal-1.json",
        _extension_with_value_and_extensions,
        "invariant",
        "Goal.subject.extension[0]",
        message_part="ext-1",
    ),
    # structure: unknown properties, JSON kinds, ele-1
    "unknown-property-on-resource": Break(
        "Goal-goal-1.json",
        _set("lifecycleStatuss", "active"),
        "structure",
        "Goal.lifecycleStatuss",
        message_part="unknown in FHIR R4",
    ),
    "unknown-property-in-reference": Break(
        "Goal-goal-1.json", _misspelt_reference, "structure", "Goal.subject.referense"
    ),
    "unknown-property-in-coding": Break(
        "Goal-goal-1.json", _misspelt_code_in_coding, "structure", "Goal.description.coding[0].cdoe"
    ),
    "wrong-json-kind-for-code": Break(
        "Goal-goal-1.json", _set("lifecycleStatus", 3), "structure", "Goal.lifecycleStatus"
    ),
    "wrong-json-kind-for-boolean": Break(
        "Goal-goal-1.json",
        _userselected_as_text,
        "structure",
        "Goal.description.coding[0].userSelected",
    ),
    "json-object-where-an-array-belongs": Break(
        "CarePlan-colonoscopy.json",
        lambda plan: plan.__setitem__("category", plan["category"][0]),
        "structure",
        "CarePlan.category",
        message_part="must be an array",
    ),
    "json-array-where-a-single-value-belongs": Break(
        "Goal-goal-1.json",
        lambda goal: goal.__setitem__("subject", [goal["subject"]]),
        "structure",
        "Goal.subject",
        message_part="cannot be an array",
    ),
    "ele-1-empty-object": Break(
        "Goal-goal-1.json", _empty_target, "structure", "Goal.target[1]", message_part="ele-1"
    ),
    "ele-1-null": Break(
        "Goal-goal-1.json",
        _set("achievementStatus", None),
        "structure",
        "Goal.achievementStatus",
        message_part="ele-1",
    ),
    "ele-1-empty-array": Break(
        "Goal-goal-1.json", _set("note", []), "structure", "Goal.note", message_part="ele-1"
    ),
    "ele-1-empty-string": Break(
        "Goal-goal-1.json",
        lambda goal: goal["description"].__setitem__("text", ""),
        "structure",
        "Goal.description.text",
        message_part="ele-1",
    ),
    # reference targets
    "reference-to-a-type-the-element-does-not-allow": Break(
        "CarePlan-colonoscopy.json",
        _set("subject", {"reference": "Practitioner/practitioner-1"}),
        "value",
        "CarePlan.subject",
        message_part="not Practitioner",
    ),
    "reference-to-a-contained-resource-of-the-wrong-type": Break(
        "CarePlan-colonoscopy.json",
        _goal_refers_to_a_contained_condition,
        "value",
        "CarePlan.goal[0]",
        message_part="not Condition",
    ),
    "reference-with-a-stated-type-the-element-does-not-allow": Break(
        "CarePlan-colonoscopy.json", _subject_typed_as_practitioner, "value", "CarePlan.subject"
    ),
    # primitive formats
    "date-outside-the-calendar": Break(
        "Goal-goal-1.json", _date_out_of_calendar, "value", "Goal.target[0].dueDate"
    ),
    "id-too-long": Break("Goal-goal-1.json", _set("id", "x" * 65), "value", "Goal.id"),
    "datetime-without-zone": Break(
        "ServiceRequest-foodpantry-referral.json",
        _set("authoredOn", "2021-11-12T10:59:38"),
        "value",
        "ServiceRequest.authoredOn",
    ),
    "unknown-property-in-a-contained-resource": Break(
        "CarePlan-colonoscopy.json",
        lambda plan: plan.update(
            contained=[{"resourceType": "Condition", "id": "c1", "sevrity": {"text": "mild"}}],
            addresses=[{"reference": "#c1"}],
        ),
        "structure",
        "CarePlan.contained[0].sevrity",
    ),
    "wrong-resource-type": Break(
        "Goal-goal-1.json", _set("resourceType", "CarePlan"), "structure", "Goal"
    ),
}


def _issues(case: Break, version: str) -> list[Issue]:
    resource = example(case.example)
    profile = us_core_profile_for(resource["resourceType"], version)
    assert profile is not None
    case.mutate(resource)
    return check(resource, profile)


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
@pytest.mark.parametrize("name", sorted(BREAKS))
def test_break_is_caught_where_it_is(name: str, version: str) -> None:
    case = BREAKS[name]
    issues = _issues(case, version)
    assert (case.code, case.expression) in where(issues), issues
    found = [i for i in issues if (i.code, i.expression) == (case.code, case.expression)]
    if case.element_id is not None:
        assert case.element_id in {issue.element_id for issue in found}
    assert any(case.message_part in issue.message for issue in found)
    assert all(issue.profile.endswith("|" + version) for issue in issues)


def test_a_break_yields_only_its_own_issue() -> None:
    """No collateral noise: dropping lifecycleStatus gives exactly one issue."""
    issues = _issues(BREAKS["goal-lifecycle-status-missing"], "7.0.0")
    assert [(i.severity, i.code, i.expression, i.element_id) for i in issues] == [
        ("error", "required", "Goal.lifecycleStatus", "Goal.lifecycleStatus")
    ]


def test_optional_elements_and_the_other_choice_type_pass() -> None:
    """No false positives: Goal.start[x] as a CodeableConcept, statusDate, outcomeReference."""
    resource = example("Goal-goal-1.json")
    resource["outcomeReference"] = [{"reference": "Observation/x"}]
    resource["statusDate"] = "2016-01-01"
    resource["startCodeableConcept"] = {"text": "soon"}
    resource["_lifecycleStatus"] = {
        "extension": [{"url": "http://example.org/x", "valueCode": "y"}]
    }
    for version in US_CORE_VERSIONS:
        assert check(resource, us_core_profile_for("Goal", version) or "") == []


def test_primitive_extension_part_is_checked() -> None:
    resource = example("Goal-goal-1.json")
    resource["_lifecycleStatus"] = {"extension": [{"url": "http://example.org/x"}]}
    issues = check(resource, us_core_profile_for("Goal", "7.0.0") or "")
    assert where(issues) == {("invariant", "Goal.lifecycleStatus.extension[0]")}


@pytest.mark.parametrize(
    "reference",
    [
        {"reference": "Patient/example"},
        {"reference": "https://ehr.example.org/fhir/Patient/example/_history/2"},
        {"reference": "urn:uuid:0b6c1a7e-8d5c-4a39-9c43-1c4a0a1f6a55"},
        {"identifier": {"system": "http://example.org/mrn", "value": "1"}},
        {"type": "Patient", "display": "Amy Shaw"},
        {"reference": "Group/g1"},
    ],
)
def test_references_that_fit_or_do_not_tell_their_type_pass(reference: JSON) -> None:
    plan = example("CarePlan-colonoscopy.json")
    plan["subject"] = reference
    assert check(plan, us_core_profile_for("CarePlan", "7.0.0") or "") == []


@pytest.mark.parametrize("resource_type", [None, "Careplan", 3])
def test_check_all_rejects_what_is_not_a_resource(resource_type: object) -> None:
    resource = example("CarePlan-colonoscopy.json")
    resource["resourceType"] = resource_type
    issues = check_all(resource)
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("error", "structure", "resourceType")
    ]


def test_nulls_that_align_primitive_arrays_with_their_extensions() -> None:
    """`given: ["Amy", null]` with `_given: [null, {...}]` is valid; a lone null is not.

    The nulls keep the values and their extensions aligned by position.
    """
    absent = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "unknown",
            }
        ]
    }
    patient: JSON = {
        "resourceType": "Patient",
        "identifier": [{"system": "http://example.org/mrn", "value": "1"}],
        "name": [{"family": "Shaw", "given": ["Amy", None], "_given": [None, absent]}],
        "gender": "female",
    }
    profile = us_core_profile_for("Patient", "7.0.0") or ""
    assert check(patient, profile) == []
    del patient["name"][0]["_given"]
    assert where(check(patient, profile)) == {("structure", "Patient.name[0].given[1]")}
