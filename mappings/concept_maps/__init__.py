"""Concept maps: the code tables of the mappings, kept as CSV data next to this loader.

Two table shapes:

- *code maps* (`internal,fhir,direction[,display]`): an internal code <-> one FHIR code of a
  required binding. `direction` says which way a row applies: `both`, `to_fhir` (several
  internal codes share one FHIR code; the `both` row is the one read back) or `to_case`
  (FHIR codes the case model has no own value for).
- *coding tables* (`internal,...` with system/code/display columns): an internal code -> the
  Coding(s) written for it. A blank code means "no standard code fits": the mapping then writes
  text only, as an extensible binding allows.

The tables are loaded once, at import; a typo in an internal code fails the import.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Generic, TypeVar

from mappings.canonical import ICD10CM, SDOHCC_TEMPORARY_CODES, SNOMED
from mappings.vocabulary import (
    AdministrativeGender,
    CareTeamRole,
    CaseStatus,
    CheckInMode,
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
    Severity,
    TransitionStatus,
)

E = TypeVar("E", bound=StrEnum)


def read_table(file_name: str) -> list[dict[str, str]]:
    """The rows of one CSV table of this package."""
    text = resources.files(__package__).joinpath(file_name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@dataclass(frozen=True, slots=True)
class CodeMap(Generic[E]):
    """Internal code <-> FHIR code, both directions; `display` is optional per FHIR code."""

    file_name: str
    to_fhir: Mapping[E, str]
    to_case: Mapping[str, E]
    display: Mapping[str, str]


def load_code_map(file_name: str, enum: type[E]) -> CodeMap[E]:
    to_fhir: dict[E, str] = {}
    to_case: dict[str, E] = {}
    display: dict[str, str] = {}
    for row in read_table(file_name):
        internal = enum(row["internal"])
        fhir_code = row["fhir"]
        direction = row["direction"]
        if direction not in {"both", "to_fhir", "to_case"}:
            raise ValueError(f"{file_name}: unknown direction {direction!r}")
        if direction in {"both", "to_fhir"}:
            to_fhir[internal] = fhir_code
        if direction in {"both", "to_case"}:
            to_case[fhir_code] = internal
        if row.get("display"):
            display[fhir_code] = row["display"]
    return CodeMap(file_name, to_fhir, to_case, display)


@dataclass(frozen=True, slots=True)
class CodingEntry:
    """The standard Coding written for an internal code (None when no standard code fits)."""

    display: str
    system: str | None = None
    code: str | None = None
    code_display: str | None = None


def load_coding_table(file_name: str, enum: type[E]) -> Mapping[E, CodingEntry]:
    table: dict[E, CodingEntry] = {}
    for row in read_table(file_name):
        table[enum(row["internal"])] = CodingEntry(
            display=row["display"],
            system=row["system"] or None,
            code=row["code"] or None,
            code_display=row["display"] if row["code"] else None,
        )
    return table


@dataclass(frozen=True, slots=True)
class NeedDomainEntry:
    display: str
    us_core_category: str | None  # us-core-category code (sdoh, functional-status, ...)
    sdohcc_code: str | None
    sdohcc_display: str | None
    snomed_code: str | None
    snomed_display: str | None


@dataclass(frozen=True, slots=True)
class InterventionTypeEntry:
    display: str
    us_core_category: str | None  # us-core-category code (sdoh, functional-status, ...)
    category_code: str | None  # SNOMED, from us-core-servicerequest-category
    category_display: str | None
    snomed_code: str | None
    snomed_display: str | None


def _optional(value: str) -> str | None:
    return value or None


def load_need_domains() -> Mapping[NeedDomain, NeedDomainEntry]:
    return {
        NeedDomain(row["internal"]): NeedDomainEntry(
            display=row["display"],
            us_core_category=_optional(row["us_core_category"]),
            sdohcc_code=_optional(row["sdohcc_code"]),
            sdohcc_display=_optional(row["sdohcc_display"]),
            snomed_code=_optional(row["snomed_code"]),
            snomed_display=_optional(row["snomed_display"]),
        )
        for row in read_table("need_domain.csv")
    }


def load_intervention_types() -> Mapping[InterventionType, InterventionTypeEntry]:
    return {
        InterventionType(row["internal"]): InterventionTypeEntry(
            display=row["display"],
            us_core_category=_optional(row["us_core_category"]),
            category_code=_optional(row["category_code"]),
            category_display=_optional(row["category_display"]),
            snomed_code=_optional(row["snomed_code"]),
            snomed_display=_optional(row["snomed_display"]),
        )
        for row in read_table("intervention_type.csv")
    }


def load_casebridge_displays() -> Mapping[tuple[str, str], str]:
    """(code system name, internal code) -> display, for CaseBridge's own CodeSystems."""
    return {
        (row["code_system"], row["internal"]): row["display"]
        for row in read_table("casebridge_codes.csv")
    }


def load_referral_closed_by_receiver() -> Mapping[tuple[str, str], InterventionStatus]:
    """(resource type, its status on the receiver's side) -> the referral's status in the case,
    for the states in which the receiver has finished with the referral. One row per state, so
    that Task.status (the receiver's work on the referral) joins ServiceRequest.status here."""
    return {
        (row["resource_type"], row["fhir"]): InterventionStatus(row["internal"])
        for row in read_table("referral_closed_by_receiver.csv")
    }


CASE_STATUS = load_code_map("case_status.csv", CaseStatus)
GOAL_LIFECYCLE = load_code_map("goal_lifecycle.csv", GoalLifecycle)
GOAL_ACHIEVEMENT = load_code_map("goal_achievement.csv", GoalAchievement)
GOAL_PRIORITY = load_code_map("goal_priority.csv", GoalPriority)
GOAL_EXPRESSED_BY = load_code_map("goal_expressed_by.csv", GoalExpressedBy)
PRIORITY = load_code_map("priority.csv", Priority)
ADMINISTRATIVE_GENDER = load_code_map("administrative_gender.csv", AdministrativeGender)
NEED_STATUS = load_code_map("need_status.csv", NeedStatus)
INTERVENTION_KIND = load_code_map("intervention_kind.csv", InterventionKind)
INTERVENTION_STATUS = load_code_map("intervention_status.csv", InterventionStatus)
PERFORMER_KIND = load_code_map("performer_kind.csv", PerformerKind)
TRANSITION_STATUS = load_code_map("transition_status.csv", TransitionStatus)
CHECK_IN_MODE = load_code_map("check_in_mode.csv", CheckInMode)
SEVERITY = load_coding_table("severity.csv", Severity)
CARE_TEAM_ROLE = load_coding_table("care_team_role.csv", CareTeamRole)
NEED_DOMAIN = load_need_domains()
INTERVENTION_TYPE = load_intervention_types()
CASEBRIDGE_DISPLAY = load_casebridge_displays()
REFERRAL_CLOSED_BY_RECEIVER = load_referral_closed_by_receiver()

# Inverse lookups of the coding tables: (system, code) -> internal code.
SEVERITY_BY_CODE: Mapping[tuple[str, str], Severity] = {
    (e.system, e.code): k for k, e in SEVERITY.items() if e.system and e.code
}
CARE_TEAM_ROLE_BY_CODE: Mapping[tuple[str, str], CareTeamRole] = {
    (e.system, e.code): k for k, e in CARE_TEAM_ROLE.items() if e.system and e.code
}
INTERVENTION_TYPE_BY_SNOMED: Mapping[str, InterventionType] = {
    e.snomed_code: k for k, e in INTERVENTION_TYPE.items() if e.snomed_code
}


# The short system names of `sdoh_domain.csv`.
SDOH_CODE_SYSTEMS: Mapping[str, str] = {
    "sdohcc": SDOHCC_TEMPORARY_CODES,
    "snomed": SNOMED,
    "icd10cm": ICD10CM,
}


def load_sdoh_domains() -> Mapping[tuple[str, str], NeedDomain]:
    """(system, code) -> need domain: the SDOH Clinical Care IG's category codes, and the SDOH
    findings (SNOMED CT, ICD-10-CM Z59) an EHR codes a health concern with, many to one."""
    return {
        (SDOH_CODE_SYSTEMS[row["system"]], row["code"]): NeedDomain(row["domain"])
        for row in read_table("sdoh_domain.csv")
    }


SDOH_DOMAIN_BY_CODE = load_sdoh_domains()


def casebridge_display(code_system: str, internal: str) -> str:
    return CASEBRIDGE_DISPLAY[(code_system, internal)]


US_CORE_CATEGORY_DISPLAY: Mapping[str, str] = {
    row["code"]: row["display"] for row in read_table("us_core_category.csv")
}


def us_core_category(code: str) -> dict[str, object]:
    """A CodeableConcept of the us-core-category CodeSystem (sdoh, functional-status, ...)."""
    return {
        "coding": [
            {
                "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
                "code": code,
                "display": US_CORE_CATEGORY_DISPLAY[code],
            }
        ]
    }
