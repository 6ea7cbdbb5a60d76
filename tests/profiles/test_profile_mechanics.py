"""fixed[x], pattern[x] outside slicing, and closed slicing: mechanisms no shipped profile uses
on its own, exercised on a copy of the US Core Goal snapshot tightened here."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_profiles.artifacts import load_structure_definition
from fhir_profiles.checker import check_against, compile_structure_definition
from fhir_profiles.checker.element_rules import CompiledProfile
from tests.profiles.example_files import US_CORE, example, where

SNOMED = "http://snomed.info/sct"


def _element(definition: dict[str, Any], element_id: str) -> dict[str, Any]:
    element: dict[str, Any] = next(
        e for e in definition["snapshot"]["element"] if e["id"] == element_id
    )
    return element


@pytest.fixture(scope="module")
def tightened_goal() -> CompiledProfile:
    definition = load_structure_definition(f"{US_CORE}us-core-goal|7.0.0")
    definition["url"] = "http://example.org/StructureDefinition/tightened-goal"
    _element(definition, "Goal.lifecycleStatus")["fixedCode"] = "active"
    _element(definition, "Goal.description")["patternCodeableConcept"] = {
        "coding": [{"system": SNOMED}]
    }
    identifier = _element(definition, "Goal.identifier")
    identifier["slicing"] = {
        "discriminator": [{"type": "value", "path": "system"}],
        "rules": "closed",
    }
    elements = definition["snapshot"]["element"]
    position = elements.index(identifier) + 1
    while elements[position]["id"].startswith("Goal.identifier."):
        position += 1
    elements[position:position] = [
        {
            "id": "Goal.identifier:local",
            "path": "Goal.identifier",
            "sliceName": "local",
            "min": 0,
            "max": "1",
            "type": [{"code": "Identifier"}],
        },
        {
            "id": "Goal.identifier:local.system",
            "path": "Goal.identifier.system",
            "min": 1,
            "max": "1",
            "type": [{"code": "uri"}],
            "fixedUri": "http://example.org/goals",
        },
        {
            "id": "Goal.identifier:local.value",
            "path": "Goal.identifier.value",
            "min": 1,
            "max": "1",
            "type": [{"code": "string"}],
        },
    ]
    return compile_structure_definition(definition)


def _goal() -> dict[str, Any]:
    goal = example("Goal-goal-1.json")
    goal["description"] = {"coding": [{"system": SNOMED, "code": "289169006"}], "text": "Weight"}
    return goal


def test_the_unbroken_goal_passes(tightened_goal: CompiledProfile) -> None:
    goal = _goal()
    goal["identifier"] = [{"system": "http://example.org/goals", "value": "g1"}]
    assert check_against(goal, tightened_goal) == []


def test_fixed_value_mismatch(tightened_goal: CompiledProfile) -> None:
    goal = _goal()
    goal["lifecycleStatus"] = "proposed"
    assert where(check_against(goal, tightened_goal)) == {("value", "Goal.lifecycleStatus")}


def test_pattern_mismatch(tightened_goal: CompiledProfile) -> None:
    goal = _goal()
    goal["description"]["coding"][0]["system"] = "http://loinc.org"
    issues = check_against(goal, tightened_goal)
    assert where(issues) == {("value", "Goal.description")}
    assert "pattern" in issues[0].message


def test_pattern_with_extra_content_matches(tightened_goal: CompiledProfile) -> None:
    goal = _goal()
    goal["description"]["coding"].insert(0, {"system": "http://loinc.org", "code": "29463-7"})
    assert check_against(goal, tightened_goal) == []


def test_closed_slicing_rejects_an_unmatched_item(tightened_goal: CompiledProfile) -> None:
    goal = _goal()
    goal["identifier"] = [{"system": "http://example.org/other", "value": "x"}]
    issues = check_against(goal, tightened_goal)
    assert where(issues) == {("structure", "Goal.identifier[0]")}
    assert "closed" in issues[0].message


def test_slice_children_are_checked(tightened_goal: CompiledProfile) -> None:
    goal = _goal()
    goal["identifier"] = [{"system": "http://example.org/goals"}]
    assert where(check_against(goal, tightened_goal)) == {("required", "Goal.identifier[0].value")}


def test_slice_max_is_checked(tightened_goal: CompiledProfile) -> None:
    goal = _goal()
    local = {"system": "http://example.org/goals", "value": "g1"}
    goal["identifier"] = [local, {**local, "value": "g2"}]
    issues = check_against(goal, tightened_goal)
    assert where(issues) == {("structure", "Goal.identifier")}
    assert issues[0].element_id == "Goal.identifier:local"
