"""Which case a resource that arrives on its own joins, or opens (docs/fhir-writes.md).

- A **ServiceRequest** whose `basedOn` names one CarePlan joins that CarePlan's case; one that
  names none is a referral intake: it opens a new case in `referral` status, the first state
  of the lifecycle (`service.cases.lifecycle`), for its subject.
- A **Goal** whose `addresses` names Conditions of one case joins that case.
- Otherwise a **Goal**, **Condition** or **CareTeam** joins its patient's one open case, or
  opens one (in `referral` status) when the patient has none. When the patient has several
  open cases and the resource does not say which, it is refused with a 422 naming them: a
  guess would put a record in the wrong person's plan of care.

Cases are opened through `service.cases.service.open_case`, the rule `/api` follows; the
patient must already be known here (POST the Patient first, or in an earlier transaction
entry).
"""

from __future__ import annotations

from typing import Any

from mappings.from_fhir.care_plan import DEFAULT_PROGRAM
from mappings.vocabulary import CaseStatus, Priority
from service.auth.deps import Actor
from service.cases.models import Case
from service.cases.repository import open_cases_of
from service.cases.schemas import CaseCreate
from service.cases.service import load_open_case, open_case
from service.db.unit_of_work import UnitOfWork
from service.fhir_engine.transactions import FhirRejected
from service.fhir_store.models import StoredResource
from service.patients.repository import get_patient

JOINABLE = frozenset({"ServiceRequest", "Goal", "Condition", "CareTeam"})


def _referenced(resource: dict[str, Any], element: str, target: str) -> list[str]:
    """Ids of the `target` resources `element` (a list of References) names."""
    prefix = f"{target}/"
    return [
        str(ref["reference"]).removeprefix(prefix)
        for ref in resource.get(element) or []
        if isinstance(ref, dict) and str(ref.get("reference", "")).startswith(prefix)
    ]


async def case_for(
    session: UnitOfWork,
    actor: Actor,
    resource_type: str,
    resource: dict[str, Any],
    patient_id: str,
    priority: Priority = Priority.routine,
) -> Case:
    """The open case the resource belongs to, opened now if it is the patient's first."""
    where = f"{resource_type}.subject"
    if resource_type == "ServiceRequest":
        plans = _referenced(resource, "basedOn", "CarePlan")
        if len(plans) > 1:
            raise FhirRejected(
                "a ServiceRequest belongs to one case; basedOn names "
                + ", ".join(f"CarePlan/{p}" for p in plans),
                extra={"expression": ["ServiceRequest.basedOn"]},
            )
        if plans:
            if await session.get(Case, plans[0]) is None:
                # Referential integrity is the server's to keep (R4 references.html#integrity):
                # a referral cannot join a plan that is not here.
                raise FhirRejected(
                    f"ServiceRequest.basedOn names CarePlan/{plans[0]}, which is not known "
                    "here; send the CarePlan first (or in the same transaction), or leave "
                    "basedOn out to open a new case",
                    extra={"expression": ["ServiceRequest.basedOn"]},
                )
            return await _own(session, await load_open_case(session, plans[0]), patient_id, where)
        return await _open_referral(session, actor, resource_type, patient_id, priority)
    if resource_type == "Goal" and (concerns := _referenced(resource, "addresses", "Condition")):
        case_ids = set()
        for condition_id in concerns:
            row = await session.get(StoredResource, ("Condition", condition_id))
            if row is not None and row.case_id is not None:
                case_ids.add(row.case_id)
        if len(case_ids) > 1:
            raise FhirRejected(
                "Goal.addresses names Conditions of different cases: "
                + ", ".join(f"CarePlan/{c}" for c in sorted(case_ids)),
                extra={"expression": ["Goal.addresses"]},
            )
        if case_ids:
            case = await load_open_case(session, case_ids.pop())
            return await _own(session, case, patient_id, where)
    cases = await open_cases_of(session, patient_id)
    if len(cases) > 1:
        how = (
            "name the case with Goal.addresses (a Condition of that case)"
            if resource_type == "Goal"
            else "add it to the case you mean through /api"
        )
        raise FhirRejected(
            f"Patient/{patient_id} has {len(cases)} open cases ("
            + ", ".join(f"CarePlan/{c.id}" for c in cases)
            + f") and the {resource_type} does not say which it belongs to; {how}",
            extra={"expression": [where]},
        )
    if cases:
        return await load_open_case(session, cases[0].id)
    return await _open_referral(session, actor, resource_type, patient_id, priority)


async def _own(session: UnitOfWork, case: Case, patient_id: str, where: str) -> Case:
    if case.patient_id != patient_id:
        raise FhirRejected(
            f"the subject must be the case's patient, Patient/{case.patient_id}",
            extra={"expression": [where]},
        )
    return case


async def _open_referral(
    session: UnitOfWork, actor: Actor, resource_type: str, patient_id: str, priority: Priority
) -> Case:
    """A new case at the start of the lifecycle, through the same rule as `POST /api/cases`."""
    if await get_patient(session, patient_id) is None:
        raise FhirRejected(
            f"Patient/{patient_id} is not known here; create the Patient first (POST Patient, "
            "or an earlier entry of the same transaction)",
            extra={"expression": [f"{resource_type}.subject"]},
        )
    data = CaseCreate(
        patient_id=patient_id,
        program=DEFAULT_PROGRAM,
        priority=priority,
        status=CaseStatus.referral,
    )
    return await open_case(session, actor, data)  # its history entry notes the change
