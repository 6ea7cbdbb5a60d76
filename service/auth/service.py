from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.to_fhir.people import practitioner_id
from service.auth.api_keys import generate_api_key, hash_api_key
from service.auth.models import ApiKey, Practitioner, Role
from service.auth.schemas import PractitionerSet
from service.cases.models import Case
from service.checkins.models import CheckIn
from service.db.base import utcnow
from service.db.unit_of_work import UnitOfWork
from service.errors import NotFound, RuleViolation
from service.fhir_store.models import StoredResource
from service.fhir_store.writer import delete_resources
from service.plans.models import Intervention


async def issue_api_key(session: AsyncSession, name: str, role: Role) -> tuple[ApiKey, str]:
    """A new key; the plain key is returned once and never stored."""
    if await session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise RuleViolation("api-key.name.unique", f"an API key named {name!r} exists")
    key = generate_api_key()
    row = ApiKey(name=name, role=role, key_hash=hash_api_key(key))
    session.add(row)
    await session.flush()
    return row, key


async def list_api_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()


async def revoke_api_key(session: AsyncSession, key_id: str) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def set_practitioner(
    session: UnitOfWork, actor: str, data: PractitionerSet, admin: str
) -> Practitioner:
    """Give `actor` a professional identity. Every case that names the actor is projected
    again, so its references (and pushes) name the Practitioner from now on."""
    row = await session.get(Practitioner, actor)
    if row is None:
        row = Practitioner(actor=actor)
        session.add(row)
    row.family_name = data.family_name
    row.given_names = list(data.given_names)
    row.npi = data.npi
    await session.flush()
    for case_id in await session.scalars(_cases_naming(actor)):
        session.changes.note_case(case_id, admin)
    return row


async def remove_practitioner(session: UnitOfWork, actor: str, admin: str) -> Practitioner:
    """The actor is the service's Organization again in the cases that name it, and the
    Practitioner they were is deleted (410 on `/fhir`, out of searches; its history stays):
    it is stored apart from any case, so no case's re-projection takes it away."""
    row = await session.get(Practitioner, actor)
    if row is None:
        raise NotFound(f"{actor} has no practitioner identity")
    await session.delete(row)
    await session.flush()
    stored = await session.get(StoredResource, ("Practitioner", practitioner_id(actor)))
    if stored is not None:
        await delete_resources(session, [stored])
    for case_id in await session.scalars(_cases_naming(actor)):
        session.changes.note_case(case_id, admin)
    return row


async def list_practitioners(session: AsyncSession) -> Sequence[Practitioner]:
    return (await session.scalars(select(Practitioner).order_by(Practitioner.actor))).all()


def _cases_naming(actor: str) -> Any:
    """Ids of the cases whose projection names `actor` (mappings.to_fhir.people.case_actors)."""
    return union(
        select(Case.id).where(Case.manager == actor),
        select(Intervention.case_id).where(Intervention.requested_by == actor),
        select(CheckIn.case_id).where(CheckIn.performed_by == actor),
    )
