"""Every query of the SMART authorization server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.fhir_auth.models import FhirClient, TokenSigningKey, UsedAssertion


async def get_client(session: AsyncSession, client_id: str) -> FhirClient | None:
    return await session.scalar(select(FhirClient).where(FhirClient.client_id == client_id))


async def list_clients(session: AsyncSession) -> Sequence[FhirClient]:
    return (await session.scalars(select(FhirClient).order_by(FhirClient.client_id))).all()


async def client_id_taken(session: AsyncSession, client_id: str) -> bool:
    found = await session.scalar(select(FhirClient.id).where(FhirClient.client_id == client_id))
    return found is not None


async def record_assertion(
    session: AsyncSession, client_id: str, jti: str, expires_at: dt.datetime
) -> bool:
    """Store a spent assertion id; False when it was already stored (a replay). One
    INSERT ... ON CONFLICT DO NOTHING, so two processes racing with one jti cannot both win."""
    values = {"client_id": client_id, "jti": jti, "expires_at": expires_at}
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(UsedAssertion).values(values).on_conflict_do_nothing()
        result = await session.execute(pg)
    else:
        lite = sqlite.insert(UsedAssertion).values(values).on_conflict_do_nothing()
        result = await session.execute(lite)
    return bool(getattr(result, "rowcount", 0) == 1)


async def purge_expired_assertions(session: AsyncSession, now: dt.datetime) -> None:
    await session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < now))


async def newest_signing_key(session: AsyncSession, alg: str) -> TokenSigningKey | None:
    return await session.scalar(
        select(TokenSigningKey)
        .where(TokenSigningKey.alg == alg)
        .order_by(TokenSigningKey.created_at.desc())
        .limit(1)
    )


async def signing_keys(session: AsyncSession) -> Sequence[TokenSigningKey]:
    return (await session.scalars(select(TokenSigningKey))).all()
