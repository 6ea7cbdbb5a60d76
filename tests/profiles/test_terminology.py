"""Required bindings: every one resolves to a shipped ValueSet, or is known not to."""

from __future__ import annotations

import importlib

import pytest

from fhir_profiles.build import FHIR_R4_CODE_TABLES
from fhir_profiles.checker import compiled_profile, unchecked_required_bindings
from fhir_profiles.checker.terminology import expand_value_set
from fhir_profiles.claims import PROFILES, ClaimedProfile

# The only required bindings the checker cannot enumerate, and why.
NOT_ENUMERABLE = {
    # Not in the shared copy of US Core; its content is not transcribed here. It only tells a
    # Condition.category slice apart (0..*), so the slice is left undecided.
    "http://hl7.org/fhir/us/core/ValueSet/us-core-screening-assessment-condition-category",
}


@pytest.mark.parametrize("claimed", PROFILES, ids=lambda claimed: claimed.canonical)
def test_every_required_binding_resolves_or_is_listed(claimed: ClaimedProfile) -> None:
    canonical = claimed.canonical
    profile = compiled_profile(canonical)
    required = {
        rule.required_value_set
        for rule in profile.rules_by_id.values()
        if rule.required_value_set is not None
    }
    assert required, "every claimed profile binds something as required"
    unresolved = {value_set for _, value_set in unchecked_required_bindings(canonical)}
    assert unresolved <= NOT_ENUMERABLE
    for value_set in required - unresolved:
        expansion = expand_value_set(value_set, profile.version)
        assert expansion is not None
        assert expansion.codings, value_set


def test_casebridge_required_bindings_all_resolve() -> None:
    for claimed in PROFILES:
        if claimed.url.startswith("https://casebridge.dev/"):
            assert unchecked_required_bindings(claimed.canonical) == []


# (module, class, field) of fhir.resources R4B whose code list matches the ValueSet.
FHIR_RESOURCES_FIELDS = {
    "request-status": ("servicerequest", "ServiceRequest", "status"),
    "request-intent": ("servicerequest", "ServiceRequest", "intent"),
    "care-plan-intent": ("careplan", "CarePlan", "intent"),
    "request-priority": ("servicerequest", "ServiceRequest", "priority"),
    "care-plan-activity-kind": ("careplan", "CarePlanActivityDetail", "kind"),
    "care-plan-activity-status": ("careplan", "CarePlanActivityDetail", "status"),
    "care-team-status": ("careteam", "CareTeam", "status"),
    "goal-status": ("goal", "Goal", "lifecycleStatus"),
    "identifier-use": ("identifier", "Identifier", "use"),
    "name-use": ("humanname", "HumanName", "use"),
    "contact-point-system": ("contactpoint", "ContactPoint", "system"),
    "contact-point-use": ("contactpoint", "ContactPoint", "use"),
    "administrative-gender": ("patient", "Patient", "gender"),
    "address-use": ("address", "Address", "use"),
    "address-type": ("address", "Address", "type"),
    "link-type": ("patient", "PatientLink", "type"),
    "provenance-entity-role": ("provenance", "ProvenanceEntity", "role"),
}


@pytest.mark.parametrize("value_set_id", sorted(FHIR_RESOURCES_FIELDS))
def test_transcribed_r4_code_table_matches_fhir_resources(value_set_id: str) -> None:
    module, class_name, field = FHIR_RESOURCES_FIELDS[value_set_id]
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{module}"), class_name)
    extra = model.model_fields[field].json_schema_extra
    assert set(extra["enum_values"]) == set(FHIR_R4_CODE_TABLES[value_set_id][1])


def test_code_tables_without_a_code_field_are_accounted_for() -> None:
    """CodeableConcept bindings carry no code list in fhir.resources; these are checked by eye."""
    assert set(FHIR_R4_CODE_TABLES) - set(FHIR_RESOURCES_FIELDS) == {
        "condition-clinical",
        "condition-ver-status",
        "servicerequest-category",
    }


def test_unversioned_binding_resolves_to_the_profiles_own_us_core_version() -> None:
    url = "http://hl7.org/fhir/us/core/ValueSet/us-core-servicerequest-category"
    older, newer = expand_value_set(url, "6.1.0"), expand_value_set(url, "7.0.0")
    assert older is not None
    assert newer is not None
    preference = (
        "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
        "care-experience-preference",
    )
    assert preference in newer.codings
    assert preference not in older.codings


def test_valueset_with_a_filter_or_unshipped_system_is_not_enumerable() -> None:
    # us-core-condition-code takes all of SNOMED CT's clinical findings (a filter)
    assert expand_value_set("http://hl7.org/fhir/us/core/ValueSet/us-core-condition-code") is None
    assert expand_value_set("http://example.org/ValueSet/not-shipped") is None
