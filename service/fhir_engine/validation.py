"""`$validate`: fhir.resources structure checks, then the profile checker (the resource's
`meta.profile`, US Core 6.1.0 and 7.0.0, or the `profile` asked for). Answers an
OperationOutcome listing every issue; 200 whether or not the resource is valid."""

from __future__ import annotations

from typing import Any

from fhir_profiles.artifacts import ArtifactNotFoundError
from fhir_profiles.checker import check, check_all
from mappings.from_fhir import ResourceRejected
from mappings.from_fhir.rejection import validate_incoming
from service.errors import BadRequest, NotFound
from service.fhir_engine.responses import json_body


def _resource_of(body: Any, resource_type: str) -> dict[str, Any]:
    """The resource itself, or the `resource` parameter of a Parameters body."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter") or []:
            if parameter.get("name") == "resource" and isinstance(parameter.get("resource"), dict):
                resource: dict[str, Any] = parameter["resource"]
                return resource
        raise BadRequest(
            "Parameters has no `resource`", extra={"expression": ["Parameters.parameter"]}
        )
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        raise BadRequest(
            f"the body must be a {resource_type} (or Parameters carrying one)",
            extra={"expression": [f"{resource_type}.resourceType"]},
        )
    return body


def validate(body: bytes, resource_type: str, profile: str | None) -> dict[str, Any]:
    parsed = json_body(body)
    resource = _resource_of(parsed, resource_type)
    try:
        validate_incoming(resource, resource_type)
    except ResourceRejected as rejected:
        return rejected.outcome
    try:
        found = check(resource, profile) if profile else check_all(resource)
    except ArtifactNotFoundError as exc:
        raise NotFound(f"profile {profile} is not known here") from exc
    issues = [
        {
            "severity": i.severity,
            "code": i.code,
            "diagnostics": f"{i.message} ({i.profile})" if i.profile else i.message,
            "expression": [i.expression],
        }
        for i in found
    ]
    if not any(i["severity"] == "error" for i in issues):
        issues.insert(
            0, {"severity": "information", "code": "informational", "diagnostics": "valid"}
        )
    return {"resourceType": "OperationOutcome", "issue": issues}
