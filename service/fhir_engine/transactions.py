"""A new case from the POST entries of a transaction Bundle that carries its CarePlan (with
its Goals, ServiceRequests, Conditions, CareTeam and, optionally, Patient), or from a CarePlan
POSTed alone. The Bundle itself is read, ordered and answered by `transaction_bundles`.

Every entry is checked against the caller's scopes, ids are assigned and the `urn:uuid`
references between entries rewritten, the whole set is mapped (`import_case`) and stored in
the request's unit of work; any failure rejects the Bundle with an OperationOutcome naming the
entry and element. A Patient entry with `ifNoneExist` on an identifier reuses the patient we
already know (conditional create).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncSession

from mappings import fhir_json
from mappings.bundles import with_references
from mappings.from_fhir import ResourceRejected, import_case
from mappings.to_fhir.context import care_team_id
from mappings.unkept_elements import unkept_elements, warning
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.importer import store_imported_case
from service.db.base import new_id
from service.db.unit_of_work import UnitOfWork
from service.errors import RuleViolation, UnprocessableEntity
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_engine.conditionals import identifier_criterion
from service.fhir_engine.own_identifiers import refuse_foreign_own_identifiers
from service.fhir_store.locks import lock_conditional_create
from service.fhir_store.models import StoredResource
from service.patients.repository import identifier_owner

CASE_TYPES = frozenset({"CarePlan", "Goal", "ServiceRequest", "Condition", "CareTeam", "Patient"})


class FhirRejected(UnprocessableEntity):
    """The mappings refused an element; `issues` are their OperationOutcome issues."""


@dataclass
class CaseEntry:
    index: int
    resource: dict[str, Any]
    full_url: str | None
    if_none_exist: str | None
    reused: str | None = None  # "Patient/<id>" when a conditional create matched
    received: dict[str, Any] | None = None  # with its id and references resolved


async def _reuse_patient(session: AsyncSession, entry: CaseEntry) -> str | None:
    """The id of the patient an `ifNoneExist=identifier=system|value` names, if we know it."""
    if entry.if_none_exist is None:
        return None
    where = f"Bundle.entry[{entry.index}].request.ifNoneExist"
    system, value = identifier_criterion(parse_qsl(entry.if_none_exist), where)
    await lock_conditional_create(session, "Patient", system, value)
    return await identifier_owner(session, system, value)


async def store_case_entries(
    session: UnitOfWork, principal: FhirPrincipal, entries: list[CaseEntry]
) -> tuple[dict[int, dict[str, Any]], dict[str, str]]:
    """Store the entries as one new case. Returns each entry's `response` (by index) and what
    each entry's fullUrl now names (`Type/id`), for the Bundle's other entries."""
    case_id = await _store_case(session, principal, entries, in_bundle=True)
    await session.project()  # now, so each entry can say what was not kept as sent
    responses: dict[int, dict[str, Any]] = {}
    references: dict[str, str] = {}
    for entry in entries:
        kind, resource_id = entry.resource["resourceType"], entry.resource["id"]
        if kind == "CareTeam":  # the case's team has the case's id (see mappings.from_fhir)
            resource_id = care_team_id(case_id)
        if entry.full_url:
            references[entry.full_url] = f"{kind}/{resource_id}"
        response: dict[str, Any] = (
            {"status": "200 OK", "location": f"{kind}/{resource_id}"}
            if entry.reused
            else {
                "status": "201 Created",
                "location": f"{kind}/{resource_id}/_history/1",
                "etag": 'W/"1"',
            }
        )
        if entry.reused is None and (issues := await _unkept(session, entry, case_id)):
            response["outcome"] = {"resourceType": "OperationOutcome", "issue": issues}
        responses[entry.index] = response
    return responses, references


async def _unkept(session: AsyncSession, entry: CaseEntry, case_id: str) -> list[dict[str, Any]]:
    """Warnings for the entry's elements the stored resource does not give back as sent."""
    assert entry.received is not None
    kind = entry.received["resourceType"]
    resource_id = care_team_id(case_id) if kind == "CareTeam" else entry.received["id"]
    row = await session.get(StoredResource, (kind, resource_id))
    if row is None or row.deleted:
        return [warning(kind, f"the {kind} is not kept: the case has no place for it")]
    return unkept_elements(entry.received, fhir_json.loads(row.content))


async def create_case(
    session: UnitOfWork, principal: FhirPrincipal, care_plan: dict[str, Any]
) -> str:
    """`POST /fhir/CarePlan`: a CarePlan on its own opens a case, as a one-entry transaction."""
    entry = CaseEntry(0, care_plan, None, None)
    return await _store_case(session, principal, [entry], in_bundle=False)


async def _store_case(
    session: UnitOfWork, principal: FhirPrincipal, entries: list[CaseEntry], *, in_bundle: bool
) -> str:
    """Map the entries into one new case and store it; returns the case id."""
    references: dict[str, str] = {}
    for entry in entries:
        kind = entry.resource["resourceType"]
        if kind == "Patient" and (owner := await _reuse_patient(session, entry)):
            entry.reused = f"Patient/{owner}"
        refuse_foreign_own_identifiers(
            entry.resource,
            entry.reused.split("/")[1] if entry.reused else None,
            f"Bundle.entry[{entry.index}].resource",
        )
        target = entry.reused or f"{kind}/{new_id()}"
        entry.resource = {**entry.resource, "id": target.split("/")[1]}
        if entry.full_url:
            references[entry.full_url] = target
    resources = [with_references(e.resource, references) for e in entries]
    for entry, resolved in zip(entries, resources, strict=True):
        entry.received = resolved
    patient_id = _patient_of(resources)
    for entry in entries:
        principal.require(entry.resource["resourceType"], Interaction.create, patient_id=patient_id)
    try:
        record = import_case(
            [r for r, e in zip(resources, entries, strict=True) if e.reused is None],
            dt.datetime.now(dt.UTC),
        )
    except ResourceRejected as exc:
        raise FhirRejected(str(exc), extra={"issues": exc.outcome["issue"]}) from exc
    actor = Actor(f"client:{principal.subject}", Role.case_manager)
    try:
        await store_imported_case(session, actor, record, under_api_rules=True)
    except RuleViolation as error:
        # Name the entry whose resource broke the rule (the importer names the resource).
        broke = error.extra.pop("resource", None)
        at = [e.index for e in entries if _reference_of(e) == broke]
        if at and in_bundle:
            error.extra.setdefault("expression", [f"Bundle.entry[{at[0]}].resource"])
        raise
    return record.id


def _reference_of(entry: CaseEntry) -> str:
    return f"{entry.resource['resourceType']}/{entry.resource['id']}"


def _patient_of(resources: list[dict[str, Any]]) -> str | None:
    """The one patient every entry is about (a case has one); None if none names one."""
    patients = {str(r["id"]) for r in resources if r["resourceType"] == "Patient"}
    for resource in resources:
        reference = (resource.get("subject") or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            patients.add(reference.removeprefix("Patient/"))
    if len(patients) > 1:
        raise FhirRejected(
            "the entries are about different patients; a case has one",
            extra={"expression": ["Bundle.entry.resource.subject"]},
        )
    return next(iter(patients), None)
