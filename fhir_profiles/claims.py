"""What the service claims: its own canonicals and the profiles it conforms to.

The CapabilityStatement is built from `PROFILES`; the identifier systems here are the ones the
CaseBridge profiles require, so the mappings must use these constants rather than repeat them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CASEBRIDGE_FHIR_BASE: Final = "https://casebridge.dev/fhir"
CASEBRIDGE_PROFILE_BASE: Final = f"{CASEBRIDGE_FHIR_BASE}/StructureDefinition/"
CASEBRIDGE_PROFILE_VERSION: Final = "0.1.0"

CASE_IDENTIFIER_SYSTEM: Final = f"{CASEBRIDGE_FHIR_BASE}/sid/case"
GOAL_IDENTIFIER_SYSTEM: Final = f"{CASEBRIDGE_FHIR_BASE}/sid/goal"
INTERVENTION_IDENTIFIER_SYSTEM: Final = f"{CASEBRIDGE_FHIR_BASE}/sid/intervention"
CASE_PROGRAM_CODE_SYSTEM: Final = f"{CASEBRIDGE_FHIR_BASE}/CodeSystem/case-program"
CASE_PROGRAM_VALUE_SET: Final = f"{CASEBRIDGE_FHIR_BASE}/ValueSet/case-program"

CASEBRIDGE_CAREPLAN: Final = f"{CASEBRIDGE_PROFILE_BASE}casebridge-careplan"
CASEBRIDGE_GOAL: Final = f"{CASEBRIDGE_PROFILE_BASE}casebridge-goal"
CASEBRIDGE_SERVICEREQUEST: Final = f"{CASEBRIDGE_PROFILE_BASE}casebridge-servicerequest"

US_CORE_PROFILE_BASE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/"
US_CORE_VERSIONS: Final = ("6.1.0", "7.0.0")


@dataclass(frozen=True)
class ClaimedProfile:
    resource_type: str
    url: str
    version: str

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"


_US_CORE_PROFILE_NAMES: Final = {
    "CarePlan": "us-core-careplan",
    "Goal": "us-core-goal",
    "ServiceRequest": "us-core-servicerequest",
    "CareTeam": "us-core-careteam",
    "Condition": "us-core-condition-problems-health-concerns",
    "Provenance": "us-core-provenance",
    "Patient": "us-core-patient",
}

PROFILES: Final[tuple[ClaimedProfile, ...]] = (
    ClaimedProfile("CarePlan", CASEBRIDGE_CAREPLAN, CASEBRIDGE_PROFILE_VERSION),
    ClaimedProfile("Goal", CASEBRIDGE_GOAL, CASEBRIDGE_PROFILE_VERSION),
    ClaimedProfile("ServiceRequest", CASEBRIDGE_SERVICEREQUEST, CASEBRIDGE_PROFILE_VERSION),
    *(
        ClaimedProfile(resource_type, US_CORE_PROFILE_BASE + name, version)
        for resource_type, name in _US_CORE_PROFILE_NAMES.items()
        for version in US_CORE_VERSIONS
    ),
)


def supported_profiles(resource_type: str) -> list[str]:
    """Versioned canonicals for CapabilityStatement.rest.resource.supportedProfile."""
    return [p.canonical for p in PROFILES if p.resource_type == resource_type]
