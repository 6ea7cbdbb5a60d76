"""The conformance artifacts CaseBridge claims, and a checker for them.

Data: US Core 6.1.0 and 7.0.0 (`us_core/`), the FHIR R4 terminology behind their required
bindings (`fhir_r4/`), and CaseBridge's own profiles on US Core 7.0.0 (`casebridge/`, snapshots
written by `fhir_profiles.build`). The checker lives in `fhir_profiles.checker`.
"""

from fhir_profiles.artifacts import (
    ArtifactNotFoundError,
    Canonical,
    load_code_system,
    load_structure_definition,
    load_value_set,
    us_core_profile_for,
)
from fhir_profiles.claims import PROFILES, ClaimedProfile, supported_profiles

__all__ = [
    "PROFILES",
    "ArtifactNotFoundError",
    "Canonical",
    "ClaimedProfile",
    "load_code_system",
    "load_structure_definition",
    "load_value_set",
    "supported_profiles",
    "us_core_profile_for",
]
