"""Canonical URLs the mappings write: profiles, code systems, extensions, identifier systems.

CaseBridge's own artifacts live under `https://casebridge.dev/fhir`, as `fhir_profiles/`
publishes them; the US Core and HL7 URLs are the published ones.
"""

from typing import Final

CASEBRIDGE_BASE: Final = "https://casebridge.dev/fhir"

# --- profiles -------------------------------------------------------------------------------
US_CORE_BASE: Final = "http://hl7.org/fhir/us/core/StructureDefinition"
US_CORE_PROFILE: Final[dict[str, str]] = {
    "CarePlan": f"{US_CORE_BASE}/us-core-careplan",
    "Goal": f"{US_CORE_BASE}/us-core-goal",
    "ServiceRequest": f"{US_CORE_BASE}/us-core-servicerequest",
    "Condition": f"{US_CORE_BASE}/us-core-condition-problems-health-concerns",
    "CareTeam": f"{US_CORE_BASE}/us-core-careteam",
    "Patient": f"{US_CORE_BASE}/us-core-patient",
    "Provenance": f"{US_CORE_BASE}/us-core-provenance",
    "Practitioner": f"{US_CORE_BASE}/us-core-practitioner",
    "Organization": f"{US_CORE_BASE}/us-core-organization",
}
CASEBRIDGE_PROFILE: Final[dict[str, str]] = {
    "CarePlan": f"{CASEBRIDGE_BASE}/StructureDefinition/casebridge-careplan",
    "Goal": f"{CASEBRIDGE_BASE}/StructureDefinition/casebridge-goal",
    "ServiceRequest": f"{CASEBRIDGE_BASE}/StructureDefinition/casebridge-servicerequest",
}


def profiles_for(resource_type: str) -> list[str]:
    """meta.profile of a produced resource: US Core first, then CaseBridge's own if any."""
    own = CASEBRIDGE_PROFILE.get(resource_type)
    return [US_CORE_PROFILE[resource_type], own] if own else [US_CORE_PROFILE[resource_type]]


# --- identifier systems: the key of conditional create / update on the EHR side -------------
IDENTIFIER_SYSTEM: Final[dict[str, str]] = {
    "CarePlan": f"{CASEBRIDGE_BASE}/sid/case",
    "Goal": f"{CASEBRIDGE_BASE}/sid/goal",
    "ServiceRequest": f"{CASEBRIDGE_BASE}/sid/intervention",
    "Condition": f"{CASEBRIDGE_BASE}/sid/need",
    "CareTeam": f"{CASEBRIDGE_BASE}/sid/care-team",
    "Patient": f"{CASEBRIDGE_BASE}/sid/patient",
    "Organization": f"{CASEBRIDGE_BASE}/sid/organization",
    "Practitioner": f"{CASEBRIDGE_BASE}/sid/practitioner",
}
NPI_SYSTEM: Final = "http://hl7.org/fhir/sid/us-npi"

# --- code systems ---------------------------------------------------------------------------
SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
US_CORE_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
US_CORE_CAREPLAN_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
US_CORE_CONDITION_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
SDOHCC_TEMPORARY_CODES: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
GOAL_ACHIEVEMENT: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
GOAL_PRIORITY: Final = "http://terminology.hl7.org/CodeSystem/goal-priority"
PROVENANCE_PARTICIPANT_TYPE: Final = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
)
US_CORE_PROVENANCE_PARTICIPANT_TYPE: Final = (
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"
)
DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
DATA_ABSENT_REASON: Final = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
CONDITION_ASSERTED_DATE: Final = "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"


def casebridge_code_system(name: str) -> str:
    """CaseBridge's own CodeSystem for one vocabulary enum, e.g. `program`, `check-in-mode`."""
    return f"{CASEBRIDGE_BASE}/CodeSystem/{name}"


PROGRAM_SYSTEM: Final = casebridge_code_system("case-program")  # fhir_profiles/casebridge
NEED_DOMAIN_SYSTEM: Final = casebridge_code_system("need-domain")
CASE_ACTIVITY_SYSTEM: Final = casebridge_code_system("case-activity")
CHECK_IN_MODE_SYSTEM: Final = casebridge_code_system("check-in-mode")
TRANSITION_KIND_SYSTEM: Final = casebridge_code_system("transition-kind")
CARE_SETTING_SYSTEM: Final = casebridge_code_system("care-setting")
REFERRAL_OUTCOME_SYSTEM: Final = casebridge_code_system("referral-outcome")
CARE_TEAM_ROLE_SYSTEM: Final = casebridge_code_system("care-team-role")
INTERVENTION_TYPE_SYSTEM: Final = casebridge_code_system("intervention-type")


# --- extensions: case data that US Core has no element for ----------------------------------
def casebridge_extension(name: str) -> str:
    return f"{CASEBRIDGE_BASE}/StructureDefinition/{name}"


EXT_CASE_STATUS: Final = casebridge_extension("case-status")
EXT_CASE_PRIORITY: Final = casebridge_extension("case-priority")
EXT_CLOSURE_REASON: Final = casebridge_extension("case-closure-reason")
EXT_ASSESSMENT: Final = casebridge_extension("case-assessment")
EXT_NEED_ASSESSMENT: Final = casebridge_extension("need-assessment")
EXT_PROGRESS_ACHIEVEMENT: Final = casebridge_extension("goal-progress-achievement")
EXT_TARGET_DETAIL_TEXT: Final = casebridge_extension("goal-target-detail-text")
EXT_REFERRAL_OUTCOME: Final = casebridge_extension("referral-outcome")
# The `id` (FHIR R4 §2.3 Element.id) of the ServiceRequest annotation that is the case's outcome
# note. `note` is 0..* Annotation: the receiver's and the EHR's notes sit beside it, kept.
OUTCOME_NOTE_ID: Final = "casebridge-outcome-note"
EXT_CHECK_IN_GOAL_PROGRESS: Final = casebridge_extension("check-in-goal-progress")
EXT_TRANSITION: Final = casebridge_extension("care-transition")
