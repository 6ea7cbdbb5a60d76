"""`/api/push`: sync status per case and connection, conflicts and their resolution, replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from service.api.problems import PROBLEM_RESPONSES, problems
from service.auth.deps import ActorDep
from service.db.session import DatabaseDep, SessionDep
from service.ehr.circuit import process_breakers
from service.ehr.deps import UrlPolicyDep
from service.push import service
from service.push.models import ConflictStatus, PushConflict, PushSync
from service.push.schemas import ConflictOut, ConflictResolutionIn, SyncStatusOut
from service.smart.deps import BackendTokensDep, SecretBoxDep

router = APIRouter(prefix="/api/push", tags=["push"], responses=PROBLEM_RESPONSES)


@router.get("/status")
async def get_sync_status(
    session: SessionDep,
    _actor: ActorDep,
    case_id: Annotated[str | None, Query()] = None,
    connection_id: Annotated[str | None, Query()] = None,
) -> list[SyncStatusOut]:
    """Per case and connection: pending, in-flight, synced (at CarePlan version N), conflict
    (synced but for the resources its open conflicts hold back; `open_conflicts` counts them),
    failed (with its reason, retried), dead (replay it) or unsupported (with the reasons); and
    the connection's circuit breaker as this process sees it."""
    query = select(PushSync).order_by(PushSync.case_id, PushSync.connection_id)
    if case_id is not None:
        query = query.where(PushSync.case_id == case_id)
    if connection_id is not None:
        query = query.where(PushSync.connection_id == connection_id)
    rows = list(await session.scalars(query.limit(500)))
    open_conflicts = await service.open_conflict_counts(session, [row.case_id for row in rows])
    return [
        SyncStatusOut.model_validate(row).model_copy(
            update={
                "circuit": process_breakers.state_of(row.connection_id),
                "open_conflicts": open_conflicts.get((row.case_id, row.connection_id), 0),
            }
        )
        for row in rows
    ]


@router.post("/status/{case_id}/{connection_id}/replay", responses=problems(409, 413))
async def replay_push(
    case_id: str, connection_id: str, session: SessionDep, _actor: ActorDep
) -> SyncStatusOut:
    """Send a dead-lettered (or failed) push again now, with a fresh set of attempts."""
    return SyncStatusOut.model_validate(await service.replay(session, case_id, connection_id))


@router.get("/conflicts")
async def get_conflicts(
    session: SessionDep,
    _actor: ActorDep,
    status: Annotated[ConflictStatus | None, Query()] = ConflictStatus.open,
    case_id: Annotated[str | None, Query()] = None,
) -> list[ConflictOut]:
    query = select(PushConflict).order_by(PushConflict.created_at, PushConflict.id)
    if status is not None:
        query = query.where(PushConflict.status == status)
    if case_id is not None:
        query = query.where(PushConflict.case_id == case_id)
    return [ConflictOut.model_validate(row) for row in await session.scalars(query.limit(500))]


@router.get("/conflicts/{conflict_id}")
async def get_conflict(conflict_id: str, session: SessionDep, _actor: ActorDep) -> ConflictOut:
    return ConflictOut.model_validate(await service.load_conflict(session, conflict_id))


@router.post(
    "/conflicts/{conflict_id}/resolve",
    responses=problems(409, 412, 413) | {502: {"description": "The EHR failed or misbehaved"}},
)
async def resolve_conflict(
    conflict_id: str,
    body: ConflictResolutionIn,
    database: DatabaseDep,
    actor: ActorDep,
    box: SecretBoxDep,
    tokens: BackendTokensDep,
    policy: UrlPolicyDep,
) -> ConflictOut:
    """keep-local: our version overwrites the EHR's; take-remote: the EHR's stays and becomes
    the merge base; edit: the given resource goes to the EHR. Delivery then goes on."""
    conflict = await service.resolve(
        database, conflict_id, body, actor.id, box=box, tokens=tokens, policy=policy
    )
    return ConflictOut.model_validate(conflict)
