"""`/api/admin/audit-events`: the audit trail, newest first, for admins."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import and_, or_, select

from service.api.pagination import Cursor, Limit, decode_cursor, encode_cursor
from service.api.problems import ADMIN_PROBLEMS
from service.audit.models import AuditPatient, AuditRecord
from service.auth.deps import AdminDep
from service.db.session import SessionDep

router = APIRouter(prefix="/api/admin/audit-events", tags=["admin"], responses=ADMIN_PROBLEMS)


@router.get("")
async def get_audit_events(
    session: SessionDep,
    _admin: AdminDep,
    patient: Annotated[str | None, Query(description="Patient id the access concerned")] = None,
    agent: Annotated[str | None, Query(description="Client id or user of the access")] = None,
    since: Annotated[dt.datetime | None, Query(description="Recorded at or after")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """AuditEvent resources (IHE BALP style), newest first, with `next_cursor` for paging."""
    statement = select(AuditRecord)
    if patient is not None:
        statement = statement.where(
            AuditRecord.id.in_(
                select(AuditPatient.event_id).where(AuditPatient.patient_id == patient)
            )
        )
    if agent is not None:
        statement = statement.where(AuditRecord.agent == agent)
    if since is not None:
        statement = statement.where(AuditRecord.recorded_at >= since)
    if cursor is not None:
        before, last_id = decode_cursor(cursor)
        statement = statement.where(
            or_(
                AuditRecord.recorded_at < before,
                and_(AuditRecord.recorded_at == before, AuditRecord.id < last_id),
            )
        )
    statement = statement.order_by(AuditRecord.recorded_at.desc(), AuditRecord.id.desc())
    rows = (await session.scalars(statement.limit(limit + 1))).all()
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].recorded_at, page[-1].id) if len(rows) > limit else None
    return {"items": [orjson.loads(r.content) for r in page], "next_cursor": next_cursor}
