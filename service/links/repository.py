"""Queries and writes of EHR links, shared by pulls (which make them) and pushes (which follow
them)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.unit_of_work import UnitOfWork
from service.links.models import PatientLink, ResourceLink


async def link_patient(
    session: UnitOfWork, connection_id: str, patient_id: str, remote_id: str
) -> PatientLink:
    """The link of `remote_id` on the connection, made for `patient_id` if there is none.

    A remote patient already linked to another local patient is not re-pointed: the existing
    link is returned and the caller decides (identity is never merged silently)."""
    existing = await session.scalar(
        select(PatientLink).where(
            PatientLink.connection_id == connection_id, PatientLink.remote_id == remote_id
        )
    )
    if existing is not None:
        return existing
    link = PatientLink(connection_id=connection_id, patient_id=patient_id, remote_id=remote_id)
    session.add(link)
    await session.flush()
    session.changes.note_patient_linked(patient_id)  # its cases go to that EHR from now on
    return link


async def patient_links(session: AsyncSession, patient_id: str) -> list[PatientLink]:
    """Every EHR identity of a local patient, oldest first."""
    rows = await session.scalars(
        select(PatientLink)
        .where(PatientLink.patient_id == patient_id)
        .order_by(PatientLink.created_at, PatientLink.id)
    )
    return list(rows)


async def resource_link(
    session: AsyncSession, connection_id: str, resource_type: str, local_id: str
) -> ResourceLink | None:
    return await session.scalar(
        select(ResourceLink).where(
            ResourceLink.connection_id == connection_id,
            ResourceLink.resource_type == resource_type,
            ResourceLink.local_id == local_id,
        )
    )


async def resource_link_by_remote(
    session: AsyncSession, connection_id: str, resource_type: str, remote_id: str
) -> ResourceLink | None:
    return await session.scalar(
        select(ResourceLink).where(
            ResourceLink.connection_id == connection_id,
            ResourceLink.resource_type == resource_type,
            ResourceLink.remote_id == remote_id,
        )
    )


async def linked_remote_ids(
    session: AsyncSession, connection_id: str, remote: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (type, remote id) pairs of the connection are linked to a local record."""
    if not remote:
        return set()
    rows = await session.execute(
        select(ResourceLink.resource_type, ResourceLink.remote_id).where(
            ResourceLink.connection_id == connection_id,
            ResourceLink.resource_type.in_({t for t, _ in remote}),
            ResourceLink.remote_id.in_({i for _, i in remote}),
        )
    )
    return {(t, i) for t, i in rows.all() if i is not None} & set(remote)
