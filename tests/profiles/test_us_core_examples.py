"""The official examples against the official profiles, in both US Core versions."""

from __future__ import annotations

import pytest

from fhir_profiles.artifacts import us_core_profile_for
from fhir_profiles.checker import check, check_all, profiles_to_check
from tests.profiles.example_files import (
    R4_EXAMPLES,
    US_CORE,
    US_CORE_EXAMPLES,
    US_CORE_VERSIONS,
    example,
    where,
)


def test_the_examples_are_there() -> None:
    assert len(US_CORE_EXAMPLES) == 9
    assert len(R4_EXAMPLES) == 9


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
@pytest.mark.parametrize("name", US_CORE_EXAMPLES)
def test_us_core_example_conforms_to_its_us_core_profile(name: str, version: str) -> None:
    resource = example(name)
    profile = us_core_profile_for(resource["resourceType"], version)
    assert profile is not None
    assert check(resource, profile) == []


@pytest.mark.parametrize("name", US_CORE_EXAMPLES)
def test_check_all_covers_meta_profile_and_both_versions(name: str) -> None:
    resource = example(name)
    profiles = profiles_to_check(resource)
    assert resource["meta"]["profile"][0] in profiles
    assert {p.rpartition("|")[2] for p in profiles} == {"6.1.0", "7.0.0"}
    assert check_all(resource) == []


# The FHIR R4 core examples predate US Core: the CarePlans carry no assess-plan category (and two
# carry no category at all). Everything else they hold conforms.
R4_VIOLATIONS = {
    "CarePlan-example.json": {("required", "CarePlan.category")},
    "CarePlan-f001.json": {("required", "CarePlan.category")},
    "CarePlan-integrate.json": {("required", "CarePlan.category")},
}


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
@pytest.mark.parametrize("name", R4_EXAMPLES)
def test_r4_core_example_against_us_core(name: str, version: str) -> None:
    resource = example(f"r4/{name}")
    profile = us_core_profile_for(resource["resourceType"], version)
    assert profile is not None
    issues = check(resource, profile)
    assert where(issues) == R4_VIOLATIONS.get(name, set())
    assert all(issue.severity == "error" for issue in issues)
    if name in R4_VIOLATIONS:
        assert "CarePlan.category:AssessPlan" in {issue.element_id for issue in issues}


def test_r4_careplan_without_any_category_breaks_both_minimums() -> None:
    issues = check(example("r4/CarePlan-f001.json"), f"{US_CORE}us-core-careplan|7.0.0")
    assert sorted(issue.element_id for issue in issues) == [
        "CarePlan.category",
        "CarePlan.category:AssessPlan",
    ]


def test_contained_resources_are_accepted_when_referenced() -> None:
    """CarePlan-example has a contained Condition it points to: dom-3 holds (and is evaluated)."""
    resource = example("r4/CarePlan-example.json")
    assert resource["contained"]
    issues = check(resource, f"{US_CORE}us-core-careplan|6.1.0")
    assert not [issue for issue in issues if issue.code in ("invariant", "not-supported")]


def test_a_declared_profile_that_is_not_shipped_is_a_warning() -> None:
    resource = example("Goal-goal-1.json")
    resource["meta"]["profile"].append("http://example.org/StructureDefinition/other-goal")
    issues = check_all(resource)
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("warning", "not-supported", "Goal.meta.profile")
    ]


def test_only_the_requested_us_core_versions_are_checked() -> None:
    resource = example("Goal-goal-1.json")
    resource["meta"] = {"profile": []}
    assert profiles_to_check(resource, us_core_versions=("6.1.0",)) == [
        f"{US_CORE}us-core-goal|6.1.0"
    ]
