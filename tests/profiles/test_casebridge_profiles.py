"""CaseBridge's own profiles: what they accept, what they reject, and how they are built."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_profiles.artifacts import load_structure_definition
from fhir_profiles.build import DerivationError, build_snapshot, generated_files, render
from fhir_profiles.checker import check, check_all, missing_must_support
from fhir_profiles.checker.terminology import expand_value_set
from fhir_profiles.claims import (
    CASE_IDENTIFIER_SYSTEM,
    CASE_PROGRAM_CODE_SYSTEM,
    CASE_PROGRAM_VALUE_SET,
    CASEBRIDGE_CAREPLAN,
    CASEBRIDGE_GOAL,
    CASEBRIDGE_PROFILE_VERSION,
    CASEBRIDGE_SERVICEREQUEST,
    GOAL_IDENTIFIER_SYSTEM,
    INTERVENTION_IDENTIFIER_SYSTEM,
    PROFILES,
    supported_profiles,
)
from mappings.vocabulary import Program
from tests.profiles.example_files import US_CORE, where

JSON = dict[str, Any]
ASSESS_PLAN = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
            "code": "assess-plan",
        }
    ]
}


def minimal_careplan() -> JSON:
    return {
        "resourceType": "CarePlan",
        "id": "case-1",
        "meta": {"profile": [f"{CASEBRIDGE_CAREPLAN}|{CASEBRIDGE_PROFILE_VERSION}"]},
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Care plan of case C-1</div>',
        },
        "identifier": [{"system": CASE_IDENTIFIER_SYSTEM, "value": "C-1"}],
        "status": "active",
        "intent": "plan",
        "category": [
            ASSESS_PLAN,
            {"coding": [{"system": CASE_PROGRAM_CODE_SYSTEM, "code": "social_work"}]},
        ],
        "subject": {"reference": "Patient/p1"},
    }


def minimal_goal() -> JSON:
    return {
        "resourceType": "Goal",
        "meta": {"profile": [CASEBRIDGE_GOAL]},
        "identifier": [{"system": GOAL_IDENTIFIER_SYSTEM, "value": "G-1"}],
        "lifecycleStatus": "active",
        "description": {"text": "Stable housing"},
        "subject": {"reference": "Patient/p1"},
        "target": [{"dueDate": "2026-12-01"}],
    }


def minimal_servicerequest() -> JSON:
    sdoh = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
    return {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [CASEBRIDGE_SERVICEREQUEST]},
        "identifier": [{"system": INTERVENTION_IDENTIFIER_SYSTEM, "value": "I-1"}],
        "basedOn": [{"reference": "CarePlan/case-1"}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": sdoh, "code": "sdoh"}]}],
        "code": {"text": "Food pantry referral"},
        "subject": {"reference": "Patient/p1"},
    }


MINIMAL = {
    CASEBRIDGE_CAREPLAN: minimal_careplan,
    CASEBRIDGE_GOAL: minimal_goal,
    CASEBRIDGE_SERVICEREQUEST: minimal_servicerequest,
}


@pytest.mark.parametrize("profile", sorted(MINIMAL))
def test_minimal_resource_conforms_to_casebridge_and_both_us_core_versions(profile: str) -> None:
    resource = MINIMAL[profile]()
    assert check(resource, profile) == []
    assert check(resource, f"{profile}|{CASEBRIDGE_PROFILE_VERSION}") == []
    assert check_all(resource) == []


def test_minimal_careplan_leaves_no_must_support_out() -> None:
    assert missing_must_support(minimal_careplan(), CASEBRIDGE_CAREPLAN) == []


def _without_case_identifier(plan: JSON) -> None:
    plan["identifier"][0]["system"] = "http://example.org/other-ids"


def _identifier_without_value(plan: JSON) -> None:
    del plan["identifier"][0]["value"]


def _unknown_program(plan: JSON) -> None:
    plan["category"][1]["coding"][0]["code"] = "veterinary"


def _no_program(plan: JSON) -> None:
    del plan["category"][1]


def _no_text(plan: JSON) -> None:
    del plan["text"]


def _no_based_on(request: JSON) -> None:
    del request["basedOn"]


def _based_on_a_goal(request: JSON) -> None:
    request["basedOn"] = [{"reference": "Goal/g1"}]


def _due_as_duration(goal: JSON) -> None:
    goal["target"][0] = {"dueDuration": {"value": 3, "unit": "mo"}}


REJECTIONS = {
    "case-identifier-missing": (
        minimal_careplan,
        _without_case_identifier,
        {("required", "CarePlan.identifier")},
    ),
    "case-identifier-without-value": (
        minimal_careplan,
        _identifier_without_value,
        {("invariant", "CarePlan.identifier[0]")},
    ),
    "program-outside-case-program-valueset": (
        minimal_careplan,
        _unknown_program,
        # The slice's pattern fixes only the system, so the coding still lands in the
        # caseProgram slice, and the slice's required binding rejects the code.
        {("code-invalid", "CarePlan.category[1].coding[0].code")},
    ),
    "program-missing": (minimal_careplan, _no_program, {("required", "CarePlan.category")}),
    "narrative-missing": (minimal_careplan, _no_text, {("required", "CarePlan.text")}),
    "based-on-missing": (
        minimal_servicerequest,
        _no_based_on,
        {("required", "ServiceRequest.basedOn"), ("invariant", "ServiceRequest")},
    ),
    "based-on-not-a-careplan": (
        minimal_servicerequest,
        _based_on_a_goal,
        {("invariant", "ServiceRequest"), ("value", "ServiceRequest.basedOn[0]")},
    ),
    "due-as-duration": (
        minimal_goal,
        _due_as_duration,
        {("structure", "Goal.target[0].dueDuration")},
    ),
}


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_casebridge_profile_rejects(name: str) -> None:
    make, mutate, expected = REJECTIONS[name]
    resource = make()
    mutate(resource)
    profile = resource["meta"]["profile"][0]
    assert where(check(resource, profile)) == expected


def test_us_core_still_accepts_what_only_casebridge_rejects() -> None:
    """The rejections above are CaseBridge's own rules, not US Core's."""
    resource = minimal_goal()
    _due_as_duration(resource)
    assert check(resource, f"{US_CORE}us-core-goal|7.0.0") == []
    assert where(check(resource, CASEBRIDGE_GOAL)) == {("structure", "Goal.target[0].dueDuration")}


@pytest.mark.parametrize("profile", sorted(MINIMAL))
def test_profile_is_a_constraint_on_us_core_7(profile: str) -> None:
    definition = load_structure_definition(profile)
    assert definition["version"] == CASEBRIDGE_PROFILE_VERSION
    assert definition["derivation"] == "constraint"
    name = {"CarePlan": "careplan", "Goal": "goal", "ServiceRequest": "servicerequest"}
    assert definition["baseDefinition"] == f"{US_CORE}us-core-{name[definition['type']]}|7.0.0"
    base = load_structure_definition(definition["baseDefinition"])
    base_ids = [element["id"] for element in base["snapshot"]["element"]]
    ids = [element["id"] for element in definition["snapshot"]["element"]]
    assert [i for i in ids if i in base_ids] == base_ids  # every base element, in base order


def test_committed_files_equal_a_fresh_build() -> None:
    """`python -m fhir_profiles.build` has been run after the last edit of a differential."""
    stale = [
        path.name
        for path, resource in generated_files().items()
        if not path.exists() or path.read_text(encoding="utf-8") != render(resource)
    ]
    assert stale == []


def test_build_refuses_to_loosen_the_base() -> None:
    profile = load_structure_definition(CASEBRIDGE_GOAL)
    profile["differential"]["element"] = [
        {"id": "Goal.lifecycleStatus", "path": "Goal.lifecycleStatus", "min": 0}
    ]
    with pytest.raises(DerivationError, match="loosens"):
        build_snapshot(profile)
    profile["differential"]["element"] = [
        {"id": "Goal.target.due[x]", "path": "Goal.target.due[x]", "type": [{"code": "Period"}]}
    ]
    with pytest.raises(DerivationError, match="widen"):
        build_snapshot(profile)


def test_case_program_codes_are_the_case_model_programs() -> None:
    expansion = expand_value_set(CASE_PROGRAM_VALUE_SET)
    assert expansion is not None
    assert expansion.codings == {(CASE_PROGRAM_CODE_SYSTEM, program.value) for program in Program}


def test_claimed_profiles_are_all_shipped() -> None:
    for claimed in PROFILES:
        assert load_structure_definition(claimed.canonical)["url"] == claimed.url
    assert supported_profiles("Goal") == [
        f"{CASEBRIDGE_GOAL}|{CASEBRIDGE_PROFILE_VERSION}",
        f"{US_CORE}us-core-goal|6.1.0",
        f"{US_CORE}us-core-goal|7.0.0",
    ]


def test_profiles_render_as_stable_json() -> None:
    for path, resource in generated_files().items():
        assert json.loads(render(resource)) == resource, path.name
