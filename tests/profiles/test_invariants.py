"""Which FHIRPath invariants are evaluated, which are not, and that fhirpathpy really runs."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_profiles.artifacts import us_core_profile_for
from fhir_profiles.checker import NOT_EVALUABLE_FUNCTIONS, check, check_all, compiled_profile
from fhir_profiles.checker.invariants import CORRECTED_EXPRESSIONS, compile_invariant
from fhir_profiles.claims import PROFILES, ClaimedProfile
from tests.profiles.example_files import example, where

# Error-level invariants skipped, each for a reason in NOT_EVALUABLE_FUNCTIONS. ele-1 is covered
# by the structure walk instead (see test_broken_variants: ele-1-*).
SKIPPED = {
    "ele-1": "hasValue",
    "txt-1": "htmlChecks",
    "txt-2": "htmlChecks",
    "ctm-1": "resolve",
    "provenance-1": "resolve",
}


@pytest.mark.parametrize("claimed", PROFILES, ids=lambda claimed: claimed.canonical)
def test_only_the_documented_invariants_are_skipped(claimed: ClaimedProfile) -> None:
    profile = compiled_profile(claimed.canonical)
    for element_id, invariant in profile.not_evaluable_invariants():
        assert invariant.key in SKIPPED, (
            element_id,
            invariant.key,
            invariant.not_evaluable_because,
        )
        reason = invariant.not_evaluable_because or ""
        assert reason.startswith(SKIPPED[invariant.key] + "()")
        assert SKIPPED[invariant.key] in NOT_EVALUABLE_FUNCTIONS


def test_every_evaluated_invariant_compiles() -> None:
    evaluated = {
        invariant.key
        for claimed in PROFILES
        for rule in compiled_profile(claimed.canonical).rules_by_id.values()
        for invariant in rule.invariants
        if invariant.evaluator is not None
    }
    assert {"dom-2", "dom-3", "dom-4", "dom-5", "ext-1", "cpl-3", "gol-1", "prr-1"} <= evaluated
    assert {"con-1", "con-2", "con-4", "con-5", "pat-1", "us-core-6", "us-core-23"} <= evaluated
    assert {"cb-careplan-1", "cb-goal-1", "cb-servicerequest-1", "cb-servicerequest-2"} <= evaluated


def test_warning_level_invariants_are_not_errors() -> None:
    """dom-6 (a narrative should exist) and con-3 are warnings in the snapshots."""
    goal = example("Goal-goal-1.json")
    del goal["text"]
    assert check(goal, us_core_profile_for("Goal", "7.0.0") or "") == []


def test_dom_3_is_evaluated_in_its_corrected_form() -> None:
    ((published, corrected),) = CORRECTED_EXPRESSIONS.items()
    assert ".as(canonical)" in published
    assert ".ofType(canonical)" in corrected
    invariant = compile_invariant({"key": "dom-3", "severity": "error", "expression": published})
    assert invariant.evaluator is not None
    plan = {
        "resourceType": "CarePlan",
        "contained": [{"resourceType": "PlanDefinition", "id": "pd"}],
        "instantiatesCanonical": ["#pd"],
    }
    assert invariant.holds(plan, "CarePlan", plan)
    plan["instantiatesCanonical"] = ["#elsewhere"]
    assert not invariant.holds(plan, "CarePlan", plan)


def _patient(name: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "http://example.org/mrn", "value": "1"}],
        "name": [name],
        "gender": "female",
    }


@pytest.mark.parametrize("version", ["6.1.0", "7.0.0"])
def test_us_core_6_patient_name_needs_a_part_or_data_absent_reason(version: str) -> None:
    profile = us_core_profile_for("Patient", version) or ""
    assert check(_patient({"family": "Shaw"}), profile) == []
    issues = check(_patient({"text": "Amy"}), profile)
    assert where(issues) == {("invariant", "Patient.name[0]")}
    assert "us-core-6" in issues[0].message
    absent = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "unknown",
            }
        ]
    }
    assert check(_patient(absent), profile) == []


def test_pat_1_contact_needs_some_detail() -> None:
    patient = _patient({"family": "Shaw"})
    patient["contact"] = [{"gender": "male"}]
    issues = check(patient, us_core_profile_for("Patient", "7.0.0") or "")
    assert where(issues) == {("invariant", "Patient.contact[0]")}
    assert "pat-1" in issues[0].message


def test_dom_3_through_the_whole_checker_for_canonical_and_literal_references() -> None:
    """The quick path (a `#id` Reference) and fhirpathpy (a `#id` canonical) agree with dom-3."""
    profile = us_core_profile_for("CarePlan", "7.0.0") or ""
    plan = example("CarePlan-colonoscopy.json")
    plan["contained"] = [
        {"resourceType": "PlanDefinition", "id": "pd", "status": "active"},
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/example"}},
    ]
    plan["instantiatesCanonical"] = ["#pd"]
    plan["addresses"] = [{"reference": "#c1"}]
    assert check(plan, profile) == []
    plan["instantiatesCanonical"] = ["http://example.org/PlanDefinition/other"]
    issues = check(plan, profile)
    assert where(issues) == {("invariant", "CarePlan")}
    assert issues[0].message.startswith("dom-3")


def test_shared_invariant_results_still_report_per_profile() -> None:
    """check_all evaluates gol-1 once on the target, and each US Core version reports it."""
    goal = example("Goal-goal-1.json")
    goal["target"][0]["detailQuantity"] = {"value": 92, "unit": "%"}
    issues = [issue for issue in check_all(goal) if issue.code == "invariant"]
    assert sorted(issue.profile.rpartition("|")[2] for issue in issues) == ["6.1.0", "7.0.0"]
    assert {issue.expression for issue in issues} == {"Goal.target[0]"}


def test_dom_invariants_are_evaluated_when_there_is_contained() -> None:
    plan = example("CarePlan-colonoscopy.json")
    plan["contained"] = [
        {"resourceType": "Condition", "id": "c1", "meta": {"security": [{"code": "R"}]}}
    ]
    plan["addresses"] = [{"reference": "#c1"}]
    issues = check(plan, us_core_profile_for("CarePlan", "7.0.0") or "")
    assert where(issues) == {("invariant", "CarePlan")}
    assert issues[0].message.startswith("dom-5")
