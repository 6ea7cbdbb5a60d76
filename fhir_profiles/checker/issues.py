"""What the checker reports: one Issue per finding, shaped like an OperationOutcome issue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "information"]
# OperationOutcome issue-type codes, so the FHIR API can turn issues into an outcome as they are.
IssueCode = Literal[
    "required", "structure", "value", "code-invalid", "invariant", "not-supported", "informational"
]


@dataclass(frozen=True)
class Issue:
    severity: Severity
    code: IssueCode
    expression: str
    """FHIRPath-like location in the resource, e.g. `CarePlan.category[0].coding[0].code`."""
    message: str
    element_id: str = ""
    """The ElementDefinition.id the finding is about, e.g. `CarePlan.category:AssessPlan`."""
    profile: str = ""
    """Canonical `url|version` of the profile that raised it."""
