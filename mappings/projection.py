"""The entry point case -> FHIR: every resource of a case, validated, as canonical JSON bytes.

`service/` calls `project_case` on every committed change and stores each resource as a new
version. Each resource is built as a plain dict, validated exactly once against fhir.resources
(R4B models, R4 content), and serialised from the dict with orjson, decimals exact
(`fhir_json`): validation is the cost floor, serialisation is nearly free (see
bench/mapping_throughput.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mappings import fhir_json
from mappings.case_model import CaseRecord
from mappings.fhir import resource_model
from mappings.fhir_datatypes import JsonDict
from mappings.to_fhir.care_plan import care_plan_resource
from mappings.to_fhir.care_team import care_team_resource
from mappings.to_fhir.condition import condition_resource
from mappings.to_fhir.context import CaseContext
from mappings.to_fhir.goal import goal_resource
from mappings.to_fhir.patient import patient_resource
from mappings.to_fhir.people import people_resources
from mappings.to_fhir.service_request import service_request_resource
from mappings.vocabulary import CaseStatus


@dataclass(frozen=True, slots=True)
class ProjectedResource:
    resource_type: str
    id: str
    json: bytes
    resource: dict[str, Any]

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass(frozen=True, slots=True)
class CaseProjection:
    case_id: str
    resources: tuple[ProjectedResource, ...]

    def __iter__(self) -> Iterator[ProjectedResource]:
        return iter(self.resources)

    def by_reference(self) -> dict[str, ProjectedResource]:
        return {r.reference: r for r in self.resources}


def case_resources(case: CaseRecord) -> list[JsonDict]:
    """The case's resources as dicts, unvalidated, in the projection's stable order:
    Patient, the people it names (Organization, Practitioners), Conditions, Goals,
    ServiceRequests, CareTeam (if it has members), CarePlan. A case entered in error has none:
    its resources were deleted when it was withdrawn (service/cases/withdrawal.py)."""
    if case.status is CaseStatus.entered_in_error:
        return []
    context = CaseContext.of(case)
    resources = [patient_resource(case.patient), *people_resources(case)]
    resources += [condition_resource(n, context) for n in case.needs]
    resources += [goal_resource(g, context) for g in case.goals]
    resources += [service_request_resource(i, context) for i in case.interventions]
    if case.care_team:
        resources.append(care_team_resource(case, context))
    resources.append(care_plan_resource(case, context))
    return resources


def validated(resource: JsonDict) -> ProjectedResource:
    """Validate once (raises pydantic.ValidationError on a mapping bug) and serialise."""
    resource_type = resource["resourceType"]
    resource_model(resource_type).model_validate(resource)
    return ProjectedResource(resource_type, resource["id"], fhir_json.dumps(resource), resource)


def project_case(case: CaseRecord) -> CaseProjection:
    return CaseProjection(case.id, tuple(validated(r) for r in case_resources(case)))
