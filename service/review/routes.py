"""`/api/review-items`: inbound changes the case could not take, listed and decided."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.api.pagination import Cursor, Limit, Page
from service.api.problems import PROBLEM_RESPONSES, problems
from service.audit.middleware import note_patients
from service.auth.deps import ActorDep
from service.db.session import SessionDep
from service.review import repository, service
from service.review.models import ReviewSource, ReviewStatus
from service.review.schemas import ReviewDecisionIn, ReviewItemOut

router = APIRouter(prefix="/api/review-items", tags=["review"], responses=PROBLEM_RESPONSES)


@router.get("")
async def get_review_items(
    request: Request,
    session: SessionDep,
    _actor: ActorDep,
    status: Annotated[ReviewStatus | None, Query()] = ReviewStatus.open,
    case_id: Annotated[str | None, Query()] = None,
    patient_id: Annotated[str | None, Query()] = None,
    connection_id: Annotated[str | None, Query()] = None,
    source: Annotated[ReviewSource | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ReviewItemOut]:
    """Open items by default, oldest first."""
    rows, next_cursor = await repository.list_review_items(
        session,
        status=status,
        case_id=case_id,
        patient_id=patient_id,
        connection_id=connection_id,
        source=source,
        cursor=cursor,
        limit=limit,
    )
    note_patients(request, {r.patient_id for r in rows if r.patient_id is not None})
    return Page(items=[ReviewItemOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{item_id}")
async def get_review_item(
    item_id: str, request: Request, session: SessionDep, _actor: ActorDep
) -> ReviewItemOut:
    item = await service.load_review_item(session, item_id)
    if item.patient_id is not None:
        note_patients(request, {item.patient_id})
    return ReviewItemOut.model_validate(item)


@router.post("/{item_id}/decision", responses=problems(409, 413))
async def post_review_decision(
    item_id: str, body: ReviewDecisionIn, session: SessionDep, actor: ActorDep
) -> ReviewItemOut:
    """apply-ehr-value: the sender's values go to the case through the domain rules (422 with
    the reason if they still refuse; the item stays open); keep-case-value, dismissed: the case
    keeps its values. The decision is recorded with who made it."""
    item = await service.decide(session, actor, item_id, body)
    return ReviewItemOut.model_validate(item)
