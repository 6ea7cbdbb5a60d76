"""A Condition or a CareTeam received on its own, applied to its case through the domain rules
of `/api`: a Condition is one of the case's needs (`service.assessments`), a CareTeam is the
case's care team, its members (`service.cases.team_and_transitions`).

- A Condition's category (the need's domain) is fixed once recorded: an update that changes it
  is refused naming `Condition.category` (record a new Condition instead).
- A case has one care team (`CareTeam/careteam-<case id>`): creating a second is a 409 that
  names it. Members are matched by role and name; a member leaves the team by being sent
  inactive (`active: false` on the contained Practitioner or RelatedPerson), as in `/api`,
  where members are never deleted. A member left out of an update is refused, naming
  `CareTeam.participant`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mappings.from_fhir import ResourceRejected, import_condition
from mappings.from_fhir.care_team import member_records
from mappings.from_fhir.rejection import validate_incoming
from mappings.preserved_elements import preserve_elements
from mappings.to_fhir.care_team import build_care_team
from mappings.to_fhir.context import CaseContext, care_team_id
from service.assessments.models import Need
from service.assessments.records import NEED_RECEIVED, need_create, need_update
from service.assessments.schemas import NeedUpdate
from service.assessments.service import add_need, change_need
from service.auth.deps import Actor
from service.cases.models import CareTeamMember, Case
from service.cases.records import member_create, member_update
from service.cases.service import load_child
from service.cases.team_and_transitions import add_member, change_member
from service.db.record_fields import assign_fields
from service.db.unit_of_work import UnitOfWork
from service.errors import Conflict
from service.fhir_engine.transactions import FhirRejected
from service.fhir_store.case_record import load_case_record


async def add_condition(
    session: UnitOfWork, actor: Actor, case: Case, resource: dict[str, Any]
) -> str:
    """A new need of the case; its id."""
    record = import_condition(resource, CaseContext(case.id, case.patient_id)).record
    need = await add_need(session, actor, case, need_create(record))
    if record.status is not need.status:
        await change_need(session, actor, case, need, NeedUpdate(status=record.status), None)
    assign_fields(need, record, NEED_RECEIVED)
    return need.id


async def change_condition(
    session: UnitOfWork, actor: Actor, case: Case, need_id: str, resource: dict[str, Any]
) -> None:
    """A received version of one of the case's Conditions updates its need."""
    record = import_condition(resource, CaseContext(case.id, case.patient_id)).record
    need = await load_child(session, Need, case.id, need_id)
    if record.domain is not need.domain:
        raise FhirRejected(
            f"the need's domain is {need.domain.value}, fixed when it was recorded; record a "
            f"new Condition for a {record.domain.value} need instead",
            extra={"expression": ["Condition.category"]},
        )
    await change_need(session, actor, case, need, need_update(record), None)
    assign_fields(need, record, NEED_RECEIVED)


async def set_care_team(
    session: UnitOfWork, actor: Actor, case: Case, resource: dict[str, Any], *, creating: bool
) -> None:
    """The received CareTeam becomes the case's team: members added, changed, or refused."""
    try:
        validate_incoming(resource, "CareTeam")
    except ResourceRejected as exc:
        raise FhirRejected(str(exc), extra={"issues": exc.outcome["issue"]}) from exc
    team_id = care_team_id(case.id)
    rows = list(
        await session.scalars(
            select(CareTeamMember)
            .where(CareTeamMember.case_id == case.id)
            .order_by(CareTeamMember.created_at, CareTeamMember.id)
        )
    )
    if creating and rows:
        raise Conflict(
            f"the case already has its care team, CareTeam/{team_id}; update it with PUT"
        )
    existing = {(row.role, row.name): row for row in rows}
    for member in member_records(resource):
        row = existing.pop((member.role, member.name), None)
        if row is None:
            await add_member(session, actor, case, member_create(member))
        else:
            await change_member(session, actor, case, row, member_update(member), None)
    if missing := [row for row in existing.values() if row.active]:
        raise FhirRejected(
            "a member leaves the care team by being sent inactive (active: false), not by "
            "being left out: " + ", ".join(f"{row.name} ({row.role.value})" for row in missing),
            extra={"expression": ["CareTeam.participant"]},
        )
    await session.flush()
    record = await load_case_record(session, case.id)
    extras = preserve_elements(
        {**resource, "id": team_id}, build_care_team(record, CaseContext.of(record))
    )
    kept = {k: v for k, v in (case.fhir_extras or {}).items() if k != "CareTeam"}
    case.fhir_extras = kept | ({"CareTeam": extras} if extras else {})
