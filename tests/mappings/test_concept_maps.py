"""Concept maps: every internal code is mapped, and every target code is in its binding.

Codes of ValueSets/CodeSystems that `fhir_profiles` ships are checked by expanding them.
SNOMED CT, LOINC, SDOHCC and the goal code systems are not shipped (SNOMED membership cannot be
verified offline at all): their codes must be in `mappings/concept_maps/external_codes.csv`,
the reviewed list of every external code the mappings write, with the display we write.
"""

from __future__ import annotations

from enum import StrEnum

import pytest

from fhir_profiles import load_code_system
from fhir_profiles.checker.terminology import expand_value_set
from mappings import concept_maps as cm
from mappings.canonical import PROGRAM_SYSTEM, SDOHCC_TEMPORARY_CODES, SNOMED, US_CORE_CATEGORY
from mappings.fhir import resource_model
from mappings.vocabulary import (
    AdministrativeGender,
    CareSetting,
    CareTeamRole,
    CaseStatus,
    CheckInMode,
    ClosureReason,
    GoalAchievement,
    GoalExpressedBy,
    GoalLifecycle,
    GoalPriority,
    InterventionKind,
    InterventionStatus,
    InterventionType,
    NeedDomain,
    NeedStatus,
    PerformerKind,
    Priority,
    Program,
    ReferralOutcome,
    Severity,
    TransitionKind,
    TransitionStatus,
)

FHIR_VS = "http://hl7.org/fhir/ValueSet/"
EXTERNAL = {(r["system"], r["code"]): r["display"] for r in cm.read_table("external_codes.csv")}

CODE_MAPS: list[tuple[cm.CodeMap[StrEnum], type[StrEnum], str]] = [
    (cm.CASE_STATUS, CaseStatus, FHIR_VS + "request-status"),  # type: ignore[list-item]
    (cm.GOAL_LIFECYCLE, GoalLifecycle, FHIR_VS + "goal-status"),  # type: ignore[list-item]
    (cm.PRIORITY, Priority, FHIR_VS + "request-priority"),  # type: ignore[list-item]
    (cm.ADMINISTRATIVE_GENDER, AdministrativeGender, FHIR_VS + "administrative-gender"),  # type: ignore[list-item]
    (cm.NEED_STATUS, NeedStatus, FHIR_VS + "condition-clinical"),  # type: ignore[list-item]
    (cm.INTERVENTION_KIND, InterventionKind, FHIR_VS + "request-intent"),  # type: ignore[list-item]
    (cm.INTERVENTION_STATUS, InterventionStatus, FHIR_VS + "request-status"),  # type: ignore[list-item]
    (cm.TRANSITION_STATUS, TransitionStatus, FHIR_VS + "care-plan-activity-status"),  # type: ignore[list-item]
    (cm.CHECK_IN_MODE, CheckInMode, FHIR_VS + "care-plan-activity-kind"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("code_map", "enum", "value_set"), CODE_MAPS, ids=lambda x: str(x)[:40])
def test_code_map_is_total_and_in_its_value_set(
    code_map: cm.CodeMap[StrEnum], enum: type[StrEnum], value_set: str
) -> None:
    assert set(code_map.to_fhir) == set(enum), f"{code_map.file_name}: unmapped internal codes"
    # Every internal code also comes back (some through a `both` row of a shared FHIR code).
    assert {code_map.to_case[code_map.to_fhir[v]] for v in enum} <= set(enum)
    expanded = expand_value_set(value_set)
    assert expanded is not None, f"{value_set} is not enumerable from fhir_profiles"
    for fhir_code in set(code_map.to_fhir.values()) | set(code_map.to_case):
        assert expanded.contains_code(fhir_code), f"{code_map.file_name}: {fhir_code}"


def test_to_fhir_then_back_is_identity_where_the_fhir_code_is_unshared() -> None:
    for code_map, enum, _ in CODE_MAPS:
        shared = [v for v in enum if list(code_map.to_fhir.values()).count(code_map.to_fhir[v]) > 1]
        for value in enum:
            if value not in shared:
                assert code_map.to_case[code_map.to_fhir[value]] is value, code_map.file_name


@pytest.mark.parametrize(
    ("code_map", "enum", "system"),
    [
        (
            cm.GOAL_ACHIEVEMENT,
            GoalAchievement,
            "http://terminology.hl7.org/CodeSystem/goal-achievement",
        ),
        (cm.GOAL_PRIORITY, GoalPriority, "http://terminology.hl7.org/CodeSystem/goal-priority"),
    ],
)
def test_goal_code_maps_use_listed_codes(
    code_map: cm.CodeMap[StrEnum], enum: type[StrEnum], system: str
) -> None:
    assert set(code_map.to_fhir) == set(enum)
    for value in enum:
        code = code_map.to_fhir[value]
        assert code_map.to_case[code] is value
        assert EXTERNAL[(system, code)] == code_map.display[code]


def test_performer_and_expressed_by_map_to_resource_types() -> None:
    for code_map, enum in (
        (cm.PERFORMER_KIND, PerformerKind),
        (cm.GOAL_EXPRESSED_BY, GoalExpressedBy),
    ):
        assert set(code_map.to_fhir) == set(enum)
        for resource_type in set(code_map.to_fhir.values()) | set(code_map.to_case):
            resource_model(resource_type)


def test_coding_tables_are_total_and_listed() -> None:
    for table, enum in ((cm.SEVERITY, Severity), (cm.CARE_TEAM_ROLE, CareTeamRole)):
        assert set(table) == set(enum)
        for entry in table.values():
            if entry.code:
                assert EXTERNAL[(str(entry.system), entry.code)] == entry.code_display


def test_need_domains_are_total_and_codes_are_bound() -> None:
    assert set(cm.NEED_DOMAIN) == set(NeedDomain)
    # Condition.category:screening-assessment binds a ValueSet fhir_profiles does not ship; it
    # is drawn from the us-core-category CodeSystem, which is shipped.
    us_core = {c["code"] for c in load_code_system(US_CORE_CATEGORY)["concept"]}
    assert us_core is not None
    for entry in cm.NEED_DOMAIN.values():
        if entry.us_core_category:
            assert entry.us_core_category in us_core
        if entry.sdohcc_code:
            assert EXTERNAL[(SDOHCC_TEMPORARY_CODES, entry.sdohcc_code)] == entry.sdohcc_display
        if entry.snomed_code:
            assert EXTERNAL[(SNOMED, entry.snomed_code)] == entry.snomed_display


def test_intervention_types_are_total_and_codes_are_bound() -> None:
    assert set(cm.INTERVENTION_TYPE) == set(InterventionType)
    category_vs = expand_value_set(
        "http://hl7.org/fhir/us/core/ValueSet/us-core-servicerequest-category"
    )
    assert category_vs is not None
    for entry in cm.INTERVENTION_TYPE.values():
        if entry.us_core_category:
            assert category_vs.contains_coding(US_CORE_CATEGORY, entry.us_core_category)
        if entry.category_code:
            assert category_vs.contains_coding(SNOMED, entry.category_code)
            assert EXTERNAL[(SNOMED, entry.category_code)] == entry.category_display
        if entry.snomed_code:
            assert EXTERNAL[(SNOMED, entry.snomed_code)] == entry.snomed_display


def test_programs_are_in_the_case_program_code_system() -> None:
    expanded = expand_value_set("https://casebridge.dev/fhir/ValueSet/case-program")
    assert expanded is not None
    for program in Program:
        assert expanded.contains_coding(PROGRAM_SYSTEM, program.value)


@pytest.mark.parametrize(
    ("code_system", "enum"),
    [
        ("program", Program),
        ("case-status", CaseStatus),
        ("closure-reason", ClosureReason),
        ("referral-outcome", ReferralOutcome),
        ("check-in-mode", CheckInMode),
        ("transition-kind", TransitionKind),
        ("care-setting", CareSetting),
    ],
)
def test_casebridge_code_systems_have_a_display_for_every_code(
    code_system: str, enum: type[StrEnum]
) -> None:
    for value in enum:
        assert cm.casebridge_display(code_system, value.value)


def test_external_code_list_has_no_unused_entries() -> None:
    used = {(e.system, e.code) for e in [*cm.SEVERITY.values(), *cm.CARE_TEAM_ROLE.values()]}
    for n in cm.NEED_DOMAIN.values():
        used |= {(SDOHCC_TEMPORARY_CODES, n.sdohcc_code), (SNOMED, n.snomed_code)}
    for i in cm.INTERVENTION_TYPE.values():
        used |= {(SNOMED, i.category_code), (SNOMED, i.snomed_code)}
    for system, code_map in (
        ("http://terminology.hl7.org/CodeSystem/goal-achievement", cm.GOAL_ACHIEVEMENT),
        ("http://terminology.hl7.org/CodeSystem/goal-priority", cm.GOAL_PRIORITY),
    ):
        used |= {(system, code) for code in code_map.to_fhir.values()}
    assert set(EXTERNAL) <= used


def test_sdoh_codes_read_back_as_the_domain_that_writes_them() -> None:
    """Every SDOHCC category and SNOMED finding a domain is written with names that domain
    again when an EHR sends it back (sdoh_domain.csv agrees with need_domain.csv)."""
    for domain, entry in cm.NEED_DOMAIN.items():
        if entry.sdohcc_code:
            assert cm.SDOH_DOMAIN_BY_CODE[(SDOHCC_TEMPORARY_CODES, entry.sdohcc_code)] is domain
        if entry.snomed_code and entry.us_core_category == "sdoh":
            assert cm.SDOH_DOMAIN_BY_CODE[(SNOMED, entry.snomed_code)] is domain
