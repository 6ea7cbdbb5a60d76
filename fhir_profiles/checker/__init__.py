"""Profile checker: a resource (as parsed JSON) against the shipped StructureDefinitions.

What it checks, driven by each profile's snapshot: cardinality (choice types and backbone
elements included), fixed[x] and pattern[x] values, slices told apart by value/pattern
discriminators with their own cardinality, required bindings whose ValueSet can be enumerated
from the shipped files, error-level FHIRPath invariants (via fhirpathpy), and JSON properties
the profile does not define where the snapshot lists an element's children.

What it does not check, and why: see README.md in this folder.
"""

from __future__ import annotations

from typing import Final

from fhir_profiles.artifacts import JSONObject, has_artifact, us_core_profile_for
from fhir_profiles.checker.element_rules import (
    CompiledProfile,
    compile_structure_definition,
    compiled_profile,
)
from fhir_profiles.checker.invariants import NOT_EVALUABLE_FUNCTIONS
from fhir_profiles.checker.issues import Issue, IssueCode, Severity
from fhir_profiles.checker.structure import is_resource_type
from fhir_profiles.checker.terminology import expand_value_set
from fhir_profiles.checker.validation import (
    InvariantResults,
    check_against,
    missing_must_support_of,
    must_support_report_of,
)
from fhir_profiles.claims import US_CORE_VERSIONS

DEFAULT_US_CORE_VERSIONS: Final = US_CORE_VERSIONS


def check(resource: JSONObject, profile_url: str) -> list[Issue]:
    """Issues of `resource` against one profile (`url` or `url|version`; newest if unversioned).

    Raises ArtifactNotFoundError when the profile is not shipped.
    """
    return check_against(resource, compiled_profile(profile_url))


def profiles_to_check(
    resource: JSONObject, us_core_versions: tuple[str, ...] = DEFAULT_US_CORE_VERSIONS
) -> list[str]:
    """meta.profile entries, then the US Core profile of the resource type in each version."""
    profiles = [p for p in resource.get("meta", {}).get("profile", []) if isinstance(p, str)]
    for version in us_core_versions:
        us_core = us_core_profile_for(resource.get("resourceType", ""), version)
        if us_core is not None:
            profiles.append(us_core)
    return profiles


def check_all(
    resource: JSONObject, us_core_versions: tuple[str, ...] = DEFAULT_US_CORE_VERSIONS
) -> list[Issue]:
    """Issues against every declared profile and the US Core profile for the type.

    A declared profile we do not ship is reported as a warning, not guessed at.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not is_resource_type(resource_type):
        return [
            Issue(
                "error",
                "structure",
                "resourceType",
                f"resourceType {resource_type!r} is not an R4 resource type",
            )
        ]
    issues: list[Issue] = []
    checked: set[str] = set()
    invariant_results: InvariantResults = {}
    for profile_url in profiles_to_check(resource, us_core_versions):
        if not has_artifact("StructureDefinition", profile_url):
            issues.append(
                Issue(
                    "warning",
                    "not-supported",
                    f"{resource.get('resourceType')}.meta.profile",
                    f"profile {profile_url} is not shipped with CaseBridge; not checked",
                    profile=profile_url,
                )
            )
            continue
        profile = compiled_profile(profile_url)
        if profile.canonical not in checked:
            checked.add(profile.canonical)
            issues.extend(check_against(resource, profile, invariant_results))
    return issues


def missing_must_support(resource: JSONObject, profile_url: str) -> list[str]:
    """Element ids flagged mustSupport that the resource leaves out.

    A nested element counts only under a parent that is present; a must-support slice counts
    as missing when no repetition matches it. The order is the snapshot's.
    """
    return missing_must_support_of(resource, compiled_profile(profile_url))


def must_support_report(resource: JSONObject, profile_url: str) -> list[Issue]:
    """The same findings as `information` issues, one per place (`CarePlan.activity[1].detail`).

    Not errors: must support obliges a sender to send the element when it holds the data, which
    only the sender can judge.
    """
    return must_support_report_of(resource, compiled_profile(profile_url))


__all__ = [
    "NOT_EVALUABLE_FUNCTIONS",
    "CompiledProfile",
    "Issue",
    "IssueCode",
    "Severity",
    "check",
    "check_against",
    "check_all",
    "compile_structure_definition",
    "compiled_profile",
    "missing_must_support",
    "must_support_report",
    "profiles_to_check",
    "unchecked_required_bindings",
]


def unchecked_required_bindings(profile_url: str) -> list[tuple[str, str]]:
    """(element id, ValueSet) of each required binding no shipped file lets the checker enumerate.

    Codes bound to these pass unchecked; everything else bound `required` is checked.
    """
    profile = compiled_profile(profile_url)
    return [
        (element_id, rule.required_value_set)
        for element_id, rule in profile.rules_by_id.items()
        if rule.required_value_set is not None
        and expand_value_set(rule.required_value_set, profile.version) is None
    ]
