"""Open a case from what was pulled for a patient: the intake's needs come from the EHR's
problem-list items and health concerns, and the CarePlan, Goals, ServiceRequests and CareTeam the
EHR already holds are imported through the inverse mappings (`mappings.from_fhir.import_case`).

Every imported resource gets a new local id (remote ids are the EHR's, and two EHRs may share
one) and a `ResourceLink` (origin `pulled`, remote id and version), so it remembers where it
came from. A resource the mappings reject is left out and reported; the rest is imported.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mappings import fhir_json
from mappings.bundles import with_references
from mappings.from_fhir import (
    ResourceRejected,
    import_care_plan,
    import_care_team,
    import_case,
    import_condition,
    import_goal,
    import_service_request,
)
from mappings.vocabulary import CaseStatus, Program
from service.auth.deps import Actor
from service.cases.importer import store_imported_case
from service.db.base import new_id
from service.db.unit_of_work import UnitOfWork
from service.errors import NotFound, RuleViolation
from service.links.models import LinkOrigin, ResourceLink
from service.links.repository import resource_link_by_remote
from service.patients.repository import get_patient
from service.pull import repository
from service.pull.models import PulledRecord

INTAKE_CATEGORIES = frozenset({"problem-list-item", "health-concern"})
CLOSED_CONDITION_STATUSES = frozenset({"inactive", "resolved", "remission"})
CLOSED_STATUSES = frozenset({"completed", "cancelled", "entered-in-error", "revoked", "rejected"})
SINGLE_CHECKS: dict[str, Any] = {
    "Condition": import_condition,
    "Goal": import_goal,
    "ServiceRequest": import_service_request,
}


@dataclass
class OpenedCase:
    case_id: str
    # (resource type, remote id, local id) of each imported resource.
    imported: list[tuple[str, str, str]] = field(default_factory=list)
    # (resource type, remote id, reason) of each resource left out.
    skipped: list[tuple[str, str, str]] = field(default_factory=list)


async def open_case_from_ehr(
    session: UnitOfWork,
    actor: Actor,
    connection_id: str,
    patient_id: str,
    *,
    program: Program | None = None,
    manager: str | None = None,
) -> OpenedCase:
    """`program` and `manager` are the planner's choice; without one, the EHR plan's (a plan
    CaseBridge wrote names its program), else nursing."""
    if await get_patient(session, patient_id) is None:
        raise NotFound(f"patient {patient_id} not found")
    records = await repository.records_of_patient(session, connection_id, patient_id)
    if not records:
        raise RuleViolation(
            "case.from_ehr.pulled",
            "nothing was pulled for this patient from that connection: pull it first",
        )
    chosen, skipped = _case_resources(records)
    for kind, remote in chosen:
        existing = await resource_link_by_remote(session, connection_id, kind, remote)
        if existing is not None:
            # One local copy per remote resource: the links would otherwise be ambiguous.
            raise RuleViolation(
                "case.from_ehr.linked",
                f"{kind}/{remote} of the EHR is already linked to {kind}/{existing.local_id}",
            )
    # New local ids, and every reference between the chosen resources rewritten to them.
    local_ids = {key: new_id() for key in chosen}
    references = {
        f"{kind}/{remote}": f"{kind}/{local_ids[(kind, remote)]}" for kind, remote in chosen
    }
    references.update(
        {
            f"Patient/{record.remote_patient_id}": f"Patient/{patient_id}"
            for record in records
            if record.remote_patient_id
        }
    )

    def local_copy(key: tuple[str, str]) -> dict[str, Any]:
        rewritten: dict[str, Any] = _without_remote_references(
            with_references(chosen[key], references), references
        )
        rewritten["id"] = local_ids[key]
        rewritten.pop("meta", None)
        rewritten.pop("identifier", None)  # the EHR's identifiers name the EHR's copy
        rewritten["subject"] = {"reference": f"Patient/{patient_id}"}
        return rewritten

    # What the mappings reject is left out, and so are the references to it.
    accepted: list[tuple[str, str]] = []
    for key in chosen:
        problem = _rejection(local_copy(key))
        if problem is None:
            accepted.append(key)
        else:
            skipped.append((key[0], key[1], problem))
            del references[f"{key[0]}/{key[1]}"]
    resources = {key: local_copy(key) for key in accepted}
    plan_key = next((k for k in resources if k[0] == "CarePlan"), None)
    plan = resources.pop(plan_key) if plan_key else _new_plan(patient_id)
    team_key = next((k for k in resources if k[0] == "CareTeam"), None)
    team = resources.pop(team_key) if team_key else None
    record = import_case([plan, *resources.values()], dt.datetime.now(dt.UTC))
    if team is not None:
        assert team_key is not None
        try:
            record = import_care_team(team, record)
        except ResourceRejected as exc:
            skipped.append((team_key[0], team_key[1], str(exc)))
            team_key = None
        else:
            if not record.care_team:
                # The case's team is its members; a team without named members projects nothing.
                skipped.append((team_key[0], team_key[1], "the care team has no named members"))
                team_key = None
    # The case opens at intake: a person reviews what the EHR said before planning on it.
    chosen_fields: dict[str, Any] = {"status": CaseStatus.intake}
    if program is not None:
        chosen_fields["program"] = program
    if manager is not None:
        chosen_fields["manager"] = manager
    record = record.model_copy(update=chosen_fields)
    case = await store_imported_case(session, actor, record, under_api_rules=False)
    opened = OpenedCase(case.id, skipped=skipped)
    versions = {(r.resource_type, r.remote_id): r.remote_version_id for r in records}
    linked = [*resources, *([plan_key] if plan_key else []), *([team_key] if team_key else [])]
    for kind, remote in linked:
        local = case.id if kind == "CarePlan" else local_ids[(kind, remote)]
        if kind == "CareTeam":
            local = f"careteam-{case.id}"
        session.add(
            ResourceLink(
                connection_id=connection_id,
                resource_type=kind,
                local_id=local,
                remote_id=remote,
                remote_version_id=versions.get((kind, remote)),
                origin=LinkOrigin.pulled,
                # In sync as imported: the local copy's first version (every imported resource
                # is new here, so the commit projects it as version 1) stands for the EHR's
                # JSON. A push then sends only what changes locally after the import, rebased
                # onto the EHR's own JSON, instead of overwriting the EHR's resource with ours.
                pushed_version_id=1,
                pushed_content=fhir_json.dumps(
                    {k: v for k, v in chosen[(kind, remote)].items() if k not in ("id", "meta")}
                ),
            )
        )
        opened.imported.append((kind, remote, local))
    await session.flush()
    return opened


def _case_resources(
    records: list[PulledRecord],
) -> tuple[dict[tuple[str, str], dict[str, Any]], list[tuple[str, str, str]]]:
    """What a new case takes: open problems and health concerns, the most recent open CarePlan,
    open Goals and ServiceRequests, and one CareTeam (the plan's, else the first open one)."""
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    skipped: list[tuple[str, str, str]] = []
    plans: list[tuple[dt.datetime | None, dict[str, Any]]] = []
    teams: list[dict[str, Any]] = []
    for record in records:
        resource: dict[str, Any] = fhir_json.loads(record.content)
        key = (record.resource_type, record.remote_id)
        if record.resource_type == "Condition":
            if _categories(resource) & INTAKE_CATEGORIES and not _closed_condition(resource):
                chosen[key] = resource
        elif record.resource_type in ("Goal", "ServiceRequest"):
            status = resource.get("lifecycleStatus") or resource.get("status")
            if status not in CLOSED_STATUSES:
                chosen[key] = resource
        elif record.resource_type == "CarePlan":
            if resource.get("status") not in CLOSED_STATUSES:
                plans.append((record.remote_last_updated, resource))
        elif record.resource_type == "CareTeam" and resource.get("status") in (None, "active"):
            teams.append(resource)
    plans.sort(key=lambda item: item[0] or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
    if plans:
        plan = plans[0][1]
        chosen[("CarePlan", plan["id"])] = plan
        for _, other in plans[1:]:
            skipped.append(
                ("CarePlan", other["id"], "a case has one CarePlan: a newer one was taken")
            )
        planned_teams = {
            (r.get("reference") or "").removeprefix("CareTeam/") for r in plan.get("careTeam") or []
        }
        teams.sort(key=lambda team: team["id"] not in planned_teams)
    if teams:
        chosen[("CareTeam", teams[0]["id"])] = teams[0]
        for other in teams[1:]:
            skipped.append(("CareTeam", other["id"], "a case has one CareTeam"))
    return chosen, skipped


def _rejection(resource: dict[str, Any]) -> str | None:
    check = SINGLE_CHECKS.get(resource["resourceType"])
    try:
        if check is not None:
            check(resource)
        elif resource["resourceType"] == "CarePlan":
            import_care_plan(resource, dt.datetime.now(dt.UTC))
    except ResourceRejected as exc:
        return str(exc)
    return None


def _new_plan(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": new_id(),
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def _categories(resource: dict[str, Any]) -> set[str]:
    return {
        str(coding.get("code"))
        for category in resource.get("category") or []
        for coding in category.get("coding") or []
    }


def _closed_condition(resource: dict[str, Any]) -> bool:
    codes = {
        coding.get("code") for coding in (resource.get("clinicalStatus") or {}).get("coding") or []
    }
    return bool(codes & CLOSED_CONDITION_STATUSES)


CASE_TYPES = frozenset({"Condition", "Goal", "ServiceRequest", "CarePlan", "CareTeam"})


def _without_remote_references(resource: dict[str, Any], references: dict[str, str]) -> Any:
    """Drop the references to the EHR's case resources that were not imported (a completed
    goal, another plan): left in, they would name ids that exist only on the EHR."""
    local = set(references.values())
    kept: dict[str, Any] = {}
    for key, value in resource.items():
        if isinstance(value, list):
            value = [item for item in value if not _remote_case_reference(item, local)]
            if not value:
                continue
        kept[key] = value
    return kept


def _remote_case_reference(item: object, local: set[str]) -> bool:
    reference = item.get("reference") if isinstance(item, dict) else None
    if not isinstance(reference, str) or reference in local:
        return False
    return reference.partition("/")[0] in CASE_TYPES
