"""Every query of App Launch: pending states and the grants launches obtained."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.smart.models import LaunchGrant, LaunchState


async def get_state(session: AsyncSession, state_hash: str) -> LaunchState | None:
    return await session.get(LaunchState, state_hash)


async def claim_state(session: AsyncSession, state_hash: str, now: dt.datetime) -> bool:
    """Mark the state used, atomically: of two concurrent callbacks only one claims it."""
    result = await session.execute(
        update(LaunchState)
        .where(LaunchState.state_hash == state_hash, LaunchState.used_at.is_(None))
        .values(used_at=now)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def get_grant(session: AsyncSession, grant_id: str) -> LaunchGrant | None:
    return await session.scalar(select(LaunchGrant).where(LaunchGrant.id == grant_id))


async def purge_states(session: AsyncSession, expired_before: dt.datetime) -> None:
    """Forget launches that expired long ago; recent ones stay to answer "expired" clearly."""
    await session.execute(delete(LaunchState).where(LaunchState.expires_at < expired_before))
