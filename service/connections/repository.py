"""Every query of the connection registry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from service.api.pagination import fetch_page
from service.connections.models import Connection, ConnectionKey, SearchProbe
from service.db.base import utcnow


async def get_connection(
    session: AsyncSession, connection_id: str, *, probes: bool = False
) -> Connection | None:
    """The connection with its keys, and with `probes` its search probes (the pull and the
    admin API read them; the push has no use for them)."""
    statement = select(Connection).where(Connection.id == connection_id)
    statement = statement.options(selectinload(Connection.keys))
    if probes:
        statement = statement.options(selectinload(Connection.search_probes))
    return await session.scalar(statement)


async def find_by_base_url(session: AsyncSession, base_url: str) -> Sequence[Connection]:
    """Connections whose FHIR base is `base_url` (an App Launch `iss`), keys loaded."""
    return (
        await session.scalars(
            select(Connection)
            .where(Connection.base_url == base_url)
            .options(selectinload(Connection.keys))
        )
    ).all()


async def name_taken(session: AsyncSession, name: str, except_id: str | None = None) -> bool:
    statement = select(Connection.id).where(Connection.name == name)
    if except_id is not None:
        statement = statement.where(Connection.id != except_id)
    return await session.scalar(statement) is not None


async def list_connections(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> tuple[Sequence[Connection], str | None]:
    statement = select(Connection).options(
        selectinload(Connection.keys), selectinload(Connection.search_probes)
    )
    return await fetch_page(session, statement, Connection.created_at, Connection.id, cursor, limit)


async def published_keys(
    session: AsyncSession, now: dt.datetime, connection_id: str | None = None
) -> Sequence[ConnectionKey]:
    """Active keys and rotated-out keys still inside their grace period, oldest first."""
    statement = select(ConnectionKey).where(
        or_(ConnectionKey.retire_after.is_(None), ConnectionKey.retire_after > now)
    )
    if connection_id is not None:
        statement = statement.where(ConnectionKey.connection_id == connection_id)
    return (
        await session.scalars(statement.order_by(ConnectionKey.created_at, ConnectionKey.kid))
    ).all()


async def remember_search_probe(
    session: AsyncSession, connection_id: str, resource_type: str, patient_param: str | None
) -> None:
    """Store what a probe found (service/pull/searches.py); a later probe's answer wins."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = module.insert(SearchProbe).values(
        connection_id=connection_id,
        resource_type=resource_type,
        patient_param=patient_param,
        probed_at=utcnow(),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["connection_id", "resource_type"],
            set_={
                "patient_param": statement.excluded.patient_param,
                "probed_at": statement.excluded.probed_at,
            },
        )
    )
