from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.api_keys import generate_api_key, hash_api_key
from service.auth.models import ApiKey, Role
from service.db.base import utcnow
from service.errors import NotFound, RuleViolation


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
