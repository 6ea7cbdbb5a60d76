"""FHIR -> case: accept CarePlans, Goals, ServiceRequests, Conditions and CareTeams others wrote.

Each `import_*` function:

1. validates the resource once with fhir.resources and rejects what is invalid with
   `ResourceRejected`, whose `outcome` is an OperationOutcome pointing at the element;
2. maps what fits into the case records (`mappings.from_fhir.<type>`);
3. regenerates the resource from those records and keeps every top-level element that differs
   in the record's `fhir_extras` (see `mappings.preserved_elements`): unknown extensions, free
   text, references that do not resolve, extra codings, whole elements the case has no place
   for. The re-export (`mappings.to_fhir`) puts them back, so a resource round-trips.

What a re-export normalises (documented, checked by the round-trip tests; docs/fidelity.md):

- `meta.versionId` / `meta.lastUpdated` are the store's and CaseBridge's profiles are added
  after the sender's; the sender's narrative is kept by the rule of
  `preserved_elements.restore_narrative`, and one is generated when none was sent;
- dates, instants and decimals are written as received while their value is unchanged
  (`mappings.lexical_forms`);
- the CaseBridge identifier is added to `identifier`, and the categories CaseBridge always
  writes (CarePlan `assess-plan` and the program, Condition `health-concern` and the need
  domain, ServiceRequest's category of its type) are added to `category`;
- a CareTeam's id is the case's (`careteam-<case id>`): the team is the case's team;
- a ServiceRequest imported into a case gets `basedOn` the case's CarePlan (added after the
  received references); one imported on its own (no case) gets none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mappings.case_model import (
    CaseRecord,
    GoalRecord,
    InterventionRecord,
    NeedRecord,
    PatientRecord,
)
from mappings.fhir_datatypes import JsonDict
from mappings.from_fhir.care_plan import patient_stub, plan_fields
from mappings.from_fhir.care_team import member_records
from mappings.from_fhir.common import subject_context
from mappings.from_fhir.condition import need_record
from mappings.from_fhir.goal import goal_record
from mappings.from_fhir.patient import patient_record
from mappings.from_fhir.rejection import ResourceRejected, reject, validate_incoming
from mappings.from_fhir.service_request import intervention_record
from mappings.preserved_elements import preserve_elements
from mappings.to_fhir.care_plan import build_care_plan
from mappings.to_fhir.care_team import build_care_team
from mappings.to_fhir.condition import build_condition
from mappings.to_fhir.context import CaseContext
from mappings.to_fhir.goal import build_goal
from mappings.to_fhir.patient import build_patient
from mappings.to_fhir.people import PEOPLE_TYPES
from mappings.to_fhir.service_request import build_service_request

R = TypeVar("R", GoalRecord, InterventionRecord, NeedRecord)

__all__ = [
    "Imported",
    "ResourceRejected",
    "accept_provenance",
    "import_care_plan",
    "import_care_team",
    "import_case",
    "import_condition",
    "import_goal",
    "import_patient",
    "import_service_request",
]


@dataclass(frozen=True, slots=True)
class Imported(Generic[R]):
    """A received resource as a case record, with the context its re-export needs."""

    record: R
    context: CaseContext


def import_goal(
    resource: Mapping[str, Any], context: CaseContext | None = None
) -> Imported[GoalRecord]:
    validate_incoming(resource, "Goal")
    return _imported(goal_record(resource), resource, context, build_goal)


def import_service_request(
    resource: Mapping[str, Any], context: CaseContext | None = None
) -> Imported[InterventionRecord]:
    validate_incoming(resource, "ServiceRequest")
    return _imported(intervention_record(resource), resource, context, build_service_request)


def import_condition(
    resource: Mapping[str, Any], context: CaseContext | None = None
) -> Imported[NeedRecord]:
    validate_incoming(resource, "Condition")
    return _imported(need_record(resource), resource, context, build_condition)


def import_patient(resource: Mapping[str, Any]) -> PatientRecord:
    """A Patient on its own: the demographics the case keeps, the rest in `fhir_extras`."""
    validate_incoming(resource, "Patient")
    record = patient_record(resource)
    return _kept(record, resource, build_patient(record))  # type: ignore[no-any-return]


def _imported(
    record: R, resource: Mapping[str, Any], context: CaseContext | None, build: Any
) -> Imported[R]:
    context = context or subject_context(resource, None)
    extras = preserve_elements(resource, build(record, context))
    return Imported(
        record.model_copy(update={"fhir_extras": extras}) if extras else record, context
    )


def import_care_plan(resource: Mapping[str, Any], received_at: dt.datetime) -> CaseRecord:
    """A CarePlan alone as a case: its links to other resources are kept as received."""
    validate_incoming(resource, "CarePlan")
    context = subject_context(resource, resource["id"])
    case = CaseRecord(patient=patient_stub(context), **plan_fields(resource, received_at))
    extras = preserve_elements(resource, build_care_plan(case, CaseContext.of(case)))
    return case.model_copy(update={"fhir_extras": {"CarePlan": extras}}) if extras else case


def import_care_team(resource: Mapping[str, Any], case: CaseRecord) -> CaseRecord:
    """`case` with the received CareTeam as its care team."""
    validate_incoming(resource, "CareTeam")
    if (resource.get("subject") or {}).get("reference") not in (None, f"Patient/{case.patient.id}"):
        raise reject("CareTeam.subject", "the care team is not about the case's patient")
    with_team = case.model_copy(update={"care_team": member_records(resource)})
    extras = preserve_elements(resource, build_care_team(with_team, CaseContext.of(with_team)))
    fhir_extras = {k: v for k, v in case.fhir_extras.items() if k != "CareTeam"}
    if extras:
        fhir_extras["CareTeam"] = extras
    return with_team.model_copy(update={"fhir_extras": fhir_extras})


def accept_provenance(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    """A received Provenance is history, not case data: validated, then stored as received."""
    validate_incoming(resource, "Provenance")
    return resource


def import_case(resources: Iterable[Mapping[str, Any]], received_at: dt.datetime) -> CaseRecord:
    """A whole case from its resources (an export Bundle's entries): one CarePlan, its Patient,
    Conditions, Goals, ServiceRequests and CareTeam. Who acts (Practitioner, Organization, as
    an export carries them) is validated and not imported: the references to them are kept
    as received. Resources of other types are rejected."""
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for resource in resources:
        kind = str(resource.get("resourceType"))
        if kind in PEOPLE_TYPES:
            validate_incoming(resource, kind)
            continue
        by_type.setdefault(kind, []).append(resource)
    unknown = set(by_type) - {
        "CarePlan",
        "Patient",
        "Condition",
        "Goal",
        "ServiceRequest",
        "CareTeam",
    }
    if unknown:
        raise reject("Bundle.entry.resource", f"not part of a case: {', '.join(sorted(unknown))}")
    plans = by_type.get("CarePlan", [])
    if len(plans) != 1:
        raise reject("Bundle.entry", f"a case has exactly one CarePlan, got {len(plans)}")
    for kind, items in by_type.items():
        for item in items:
            validate_incoming(item, kind)
    plan = plans[0]
    patients = by_type.get("Patient", [])
    context = subject_context(plan, plan["id"])
    patient = patient_record(patients[0]) if patients else patient_stub(context)
    case = CaseRecord(
        patient=patient,
        needs=tuple(need_record(r) for r in by_type.get("Condition", [])),
        goals=tuple(goal_record(r) for r in by_type.get("Goal", [])),
        interventions=tuple(intervention_record(r) for r in by_type.get("ServiceRequest", [])),
        **plan_fields(plan, received_at),
    )
    teams = by_type.get("CareTeam", [])
    if len(teams) > 1:
        raise reject("Bundle.entry", "a case has at most one CareTeam")
    if teams:
        case = case.model_copy(update={"care_team": member_records(teams[0])})
    context = CaseContext.of(case)
    extras: dict[str, Any] = {}
    if plan_extras := preserve_elements(plan, build_care_plan(case, context)):
        extras["CarePlan"] = plan_extras
    if teams and (team_extras := preserve_elements(teams[0], build_care_team(case, context))):
        extras["CareTeam"] = team_extras
    return case.model_copy(
        update={
            "fhir_extras": extras,
            "patient": _kept(case.patient, patients[0], build_patient(case.patient))
            if patients
            else case.patient,
            "needs": tuple(
                _kept(n, r, build_condition(n, context))
                for n, r in zip(case.needs, by_type.get("Condition", []), strict=True)
            ),
            "goals": tuple(
                _kept(g, r, build_goal(g, context))
                for g, r in zip(case.goals, by_type.get("Goal", []), strict=True)
            ),
            "interventions": tuple(
                _kept(i, r, build_service_request(i, context))
                for i, r in zip(case.interventions, by_type.get("ServiceRequest", []), strict=True)
            ),
        }
    )


def _kept(record: Any, received: Mapping[str, Any], generated: JsonDict) -> Any:
    """`record` with the elements of `received` it does not regenerate in its extras."""
    extras = preserve_elements(received, generated)
    return record.model_copy(update={"fhir_extras": extras}) if extras else record
