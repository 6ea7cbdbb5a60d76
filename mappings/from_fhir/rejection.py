"""Rejecting an invalid incoming resource: an OperationOutcome whose `expression` points at
the element (`Goal.target[0].dueDate`), raised as `ResourceRejected`.

Only what is invalid is rejected: what fhir.resources refuses (structure, datatypes,
cardinality, unknown elements) and the few things the case model cannot hold at all (a
resource type we do not import, a subject that is not a Patient). Everything else is mapped or
kept in `fhir_extras`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from mappings.fhir import resource_model
from mappings.fhir_datatypes import JsonDict


class ResourceRejected(ValueError):
    """An incoming resource the service cannot accept; `outcome` is the OperationOutcome."""

    def __init__(self, outcome: JsonDict) -> None:
        self.outcome = outcome
        super().__init__("; ".join(i["diagnostics"] for i in outcome["issue"]))


def issue(expression: str, diagnostics: str, code: str = "invalid") -> JsonDict:
    return {
        "severity": "error",
        "code": code,
        "diagnostics": diagnostics,
        "expression": [expression],
    }


def reject(expression: str, diagnostics: str, code: str = "invalid") -> ResourceRejected:
    return ResourceRejected(
        {"resourceType": "OperationOutcome", "issue": [issue(expression, diagnostics, code)]}
    )


def fhirpath_of(resource_type: str, location: Sequence[int | str]) -> str:
    """`('target', 0, 'dueDate')` -> `Goal.target[0].dueDate`."""
    path = resource_type
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}"
    return path


def validate_incoming(resource: Mapping[str, Any], expected_type: str) -> None:
    """fhir.resources validation of a received resource, as an OperationOutcome on failure."""
    if not isinstance(resource, Mapping):
        raise reject(expected_type, "the body is not a JSON object", "structure")
    actual = resource.get("resourceType")
    if actual != expected_type:
        raise reject(
            f"{expected_type}.resourceType",
            f"expected a {expected_type}, got {actual!r}",
            "not-supported",
        )
    try:
        resource_model(expected_type).model_validate(resource)
    except pydantic.ValidationError as error:
        issues = [
            issue(
                fhirpath_of(expected_type, [p for p in e["loc"] if not _is_internal(p)]),
                e["msg"],
                "structure" if e["type"] in {"extra_forbidden", "missing"} else "value",
            )
            for e in error.errors()
        ]
        raise ResourceRejected({"resourceType": "OperationOutcome", "issue": issues}) from None


def _is_internal(part: int | str) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))
