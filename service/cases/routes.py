from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from mappings.vocabulary import CaseStatus, Program
from service.api.concurrency import IfMatch, required_version, set_etag
from service.api.pagination import Cursor, Limit, Page
from service.api.problems import CREATE_PROBLEMS, PROBLEM_RESPONSES, UPDATE_PROBLEMS
from service.audit.middleware import note_patients
from service.auth.deps import ActorDep
from service.cases import repository
from service.cases.closure import change_case
from service.cases.models import CareTeamMember, Note, Transition
from service.cases.records_router import RecordType, case_records_router
from service.cases.schemas import (
    CareTeamMemberCreate,
    CareTeamMemberOut,
    CareTeamMemberUpdate,
    CaseCreate,
    CaseEventOut,
    CaseOut,
    CaseUpdate,
    NoteCreate,
    NoteOut,
    NoteUpdate,
    TransitionCreate,
    TransitionOut,
    TransitionUpdate,
)
from service.cases.service import load_case, open_case
from service.cases.team_and_transitions import (
    add_member,
    add_note,
    add_transition,
    change_member,
    change_note,
    change_transition,
)
from service.db.base import utcnow
from service.db.session import SessionDep

router = APIRouter(prefix="/api/cases", tags=["cases"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, responses=CREATE_PROBLEMS)
async def post_case(
    body: CaseCreate, session: SessionDep, actor: ActorDep, response: Response
) -> CaseOut:
    case = await open_case(session, actor, body)
    set_etag(response, case.version)
    response.headers["Location"] = f"/api/cases/{case.id}"
    return CaseOut.model_validate(case)


@router.get("")
async def get_cases(
    request: Request,
    session: SessionDep,
    _actor: ActorDep,
    status: CaseStatus | None = None,
    program: Program | None = None,
    manager: str | None = None,
    patient_id: str | None = None,
    goals_overdue: Annotated[
        bool, Query(description="Only cases with an open goal past its due date")
    ] = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[CaseOut]:
    rows, next_cursor = await repository.list_cases(
        session,
        status=status,
        program=program,
        manager=manager,
        patient_id=patient_id,
        goals_overdue_on=utcnow().date() if goals_overdue else None,
        cursor=cursor,
        limit=limit,
    )
    note_patients(request, {r.patient_id for r in rows})
    return Page(items=[CaseOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{case_id}")
async def get_case(
    case_id: str, session: SessionDep, _actor: ActorDep, response: Response
) -> CaseOut:
    case = await load_case(session, case_id)
    set_etag(response, case.version)
    return CaseOut.model_validate(case)


@router.patch("/{case_id}", responses=UPDATE_PROBLEMS)
async def patch_case(
    case_id: str,
    body: CaseUpdate,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
    if_match: IfMatch = None,
) -> CaseOut:
    expected = required_version(if_match)
    case = await load_case(session, case_id)
    case = await change_case(session, actor, case, body, expected)
    set_etag(response, case.version)
    return CaseOut.model_validate(case)


@router.get("/{case_id}/history")
async def get_case_history(
    case_id: str,
    session: SessionDep,
    _actor: ActorDep,
    after: Annotated[int | None, Query(description="Last event id already seen")] = None,
    limit: Limit = 100,
) -> list[CaseEventOut]:
    await load_case(session, case_id)
    events = await repository.list_events(session, case_id, after, limit)
    return [CaseEventOut.model_validate(e) for e in events]


care_team_router = case_records_router(
    RecordType(
        path="/care-team",
        model=CareTeamMember,
        create_schema=CareTeamMemberCreate,
        update_schema=CareTeamMemberUpdate,
        out_schema=CareTeamMemberOut,
        create=add_member,
        update=change_member,
    ),
    "care team",
)
transitions_router = case_records_router(
    RecordType(
        path="/transitions",
        model=Transition,
        create_schema=TransitionCreate,
        update_schema=TransitionUpdate,
        out_schema=TransitionOut,
        create=add_transition,
        update=change_transition,
    ),
    "transitions of care",
)
notes_router = case_records_router(
    RecordType(
        path="/notes",
        model=Note,
        create_schema=NoteCreate,
        update_schema=NoteUpdate,
        out_schema=NoteOut,
        create=add_note,
        update=change_note,
    ),
    "notes",
)
