from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.api.problems import problems
from service.db.schema import current_revisions, head_revisions
from service.db.session import DatabaseDep
from service.errors import ServiceUnavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses=problems(503))
async def readyz(database: DatabaseDep) -> dict[str, str]:
    """Readiness: the database answers and its schema is the one this code expects."""
    try:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        current = await current_revisions(database.engine)
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from exc
    if current != head_revisions():
        raise ServiceUnavailable(
            f"schema at {sorted(current) or 'nothing'}, code expects {sorted(head_revisions())}"
        )
    return {"status": "ready", "schema": ",".join(sorted(current))}
