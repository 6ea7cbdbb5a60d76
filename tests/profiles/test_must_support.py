"""The must-support report: what a resource leaves out of what the profile flags mustSupport."""

from __future__ import annotations

import pytest

from fhir_profiles.artifacts import us_core_profile_for
from fhir_profiles.checker import missing_must_support, must_support_report
from tests.profiles.example_files import US_CORE_VERSIONS, example


def _profile(resource_type: str, version: str) -> str:
    profile = us_core_profile_for(resource_type, version)
    assert profile is not None
    return profile


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
def test_complete_careplan_misses_nothing(version: str) -> None:
    assert (
        missing_must_support(example("CarePlan-colonoscopy.json"), _profile("CarePlan", version))
        == []
    )


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
def test_each_removed_must_support_element_is_reported(version: str) -> None:
    profile = _profile("CarePlan", version)
    plan = example("CarePlan-colonoscopy.json")
    del plan["text"]
    # text is reported; its children are not, since their parent is absent
    assert missing_must_support(plan, profile) == ["CarePlan.text"]
    plan = example("CarePlan-colonoscopy.json")
    del plan["text"]["status"]
    assert missing_must_support(plan, profile) == ["CarePlan.text.status"]


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
def test_missing_must_support_slice_is_reported(version: str) -> None:
    plan = example("CarePlan-colonoscopy.json")
    plan["category"][0]["coding"][0]["code"] = "careteam"
    assert missing_must_support(plan, _profile("CarePlan", version)) == [
        "CarePlan.category:AssessPlan"
    ]


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
def test_goal_without_start_reports_the_choice_element(version: str) -> None:
    goal = example("Goal-goal-1.json")
    assert missing_must_support(goal, _profile("Goal", version)) == ["Goal.start[x]"]
    goal["startDate"] = "2016-01-01"
    assert missing_must_support(goal, _profile("Goal", version)) == []


def test_must_support_differs_between_versions() -> None:
    """ServiceRequest.encounter became must-support in US Core 7.0.0."""
    request = example("ServiceRequest-foodpantry-referral.json")
    assert missing_must_support(request, _profile("ServiceRequest", "6.1.0")) == []
    assert missing_must_support(request, _profile("ServiceRequest", "7.0.0")) == [
        "ServiceRequest.encounter"
    ]


def test_nested_must_support_under_present_backbone_elements() -> None:
    provenance = example("Provenance-example-targeted-provenance.json")
    assert missing_must_support(provenance, _profile("Provenance", "7.0.0")) == [
        "Provenance.agent.onBehalfOf",
        "Provenance.agent:ProvenanceAuthor",
        "Provenance.agent:ProvenanceTransmitter",
    ]


def test_slice_told_apart_by_a_valueset_we_cannot_enumerate_is_not_reported() -> None:
    """Condition.category:screening-assessment is bound to a ValueSet not shipped here, so
    whether a category belongs to it cannot be decided; it is left out rather than guessed."""
    condition = example("Condition-health-concern-example.json")
    missing = missing_must_support(condition, _profile("Condition", "7.0.0"))
    assert missing == ["Condition.abatement[x]"]


def test_report_names_each_place_as_an_information_issue() -> None:
    plan = example("CarePlan-colonoscopy.json")
    plan["category"][0]["coding"][0]["code"] = "careteam"
    del plan["text"]["status"]
    issues = must_support_report(plan, _profile("CarePlan", "7.0.0"))
    assert [(i.severity, i.code, i.expression, i.element_id) for i in issues] == [
        ("information", "informational", "CarePlan.text.status", "CarePlan.text.status"),
        ("information", "informational", "CarePlan.category", "CarePlan.category:AssessPlan"),
    ]
    assert "slice 'AssessPlan'" in issues[1].message


def test_report_repeats_per_repetition_where_the_id_list_does_not() -> None:
    team = example("CareTeam-example.json")
    for participant in team["participant"]:
        del participant["role"]
    profile = _profile("CareTeam", "7.0.0")
    assert missing_must_support(team, profile) == ["CareTeam.participant.role"]
    report = must_support_report(team, profile)
    assert [i.expression for i in report] == [
        f"CareTeam.participant[{index}].role" for index in range(len(team["participant"]))
    ]
