"""The four endpoints every record of a case has: create, list, read, update.

Each record type supplies its own create/update service functions (its rules live there);
this module only adapts them to HTTP, the same way for all. Annotations are evaluated eagerly
here (no `from __future__ import annotations`) because FastAPI reads the schema classes from
the closures' signatures.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from service.api.concurrency import IfMatch, required_version, set_etag
from service.api.pagination import Cursor, Limit, Page
from service.api.problems import CREATE_PROBLEMS, PROBLEM_RESPONSES, UPDATE_PROBLEMS
from service.auth.deps import Actor, ActorDep
from service.cases import repository
from service.cases.models import Case, CaseChild
from service.cases.service import load_case, load_child, load_open_case
from service.db.session import SessionDep
from service.db.unit_of_work import UnitOfWork

RowT = TypeVar("RowT", bound=CaseChild)
CreateT = TypeVar("CreateT", bound=BaseModel)
UpdateT = TypeVar("UpdateT", bound=BaseModel)

CreateRecord = Callable[[UnitOfWork, Actor, Case, CreateT], Awaitable[RowT]]
UpdateRecord = Callable[[UnitOfWork, Actor, Case, RowT, UpdateT, int | None], Awaitable[RowT]]


def _no_filters() -> list[Any]:
    return []


class RecordType(Generic[RowT, CreateT, UpdateT]):
    """Everything the generic endpoints need to know about one kind of case record."""

    def __init__(
        self,
        *,
        path: str,
        model: type[RowT],
        create_schema: type[CreateT],
        update_schema: type[UpdateT],
        out_schema: type[BaseModel],
        create: CreateRecord[CreateT, RowT],
        update: UpdateRecord[RowT, UpdateT],
        load_options: Sequence[Any] = (),
        list_filters: Callable[..., list[Any]] = _no_filters,
    ) -> None:
        self.path = path
        self.model = model
        self.create_schema = create_schema
        self.update_schema = update_schema
        self.out_schema = out_schema
        self.create = create
        self.update = update
        self.load_options = tuple(load_options)
        self.list_filters = list_filters


def case_records_router(record: RecordType[Any, Any, Any], tag: str) -> APIRouter:
    router = APIRouter(prefix="/api/cases/{case_id}", tags=[tag], responses=PROBLEM_RESPONSES)
    Create = record.create_schema
    Update = record.update_schema
    Out = record.out_schema
    path = record.path

    async def reload(session: AsyncSession, case_id: str, record_id: str) -> Any:
        # Re-read with the links the response shows (relationships are lazy="raise").
        await session.flush()
        session.expunge_all()
        return await load_child(session, record.model, case_id, record_id, *record.load_options)

    @router.post(
        path, status_code=status.HTTP_201_CREATED, response_model=Out, responses=CREATE_PROBLEMS
    )
    async def create(
        case_id: str,
        body: Create,  # type: ignore[valid-type]
        session: SessionDep,
        actor: ActorDep,
        response: Response,
    ) -> Any:
        case = await load_open_case(session, case_id)
        row = await record.create(session, actor, case, body)
        row = await reload(session, case_id, row.id)
        set_etag(response, row.version)
        response.headers["Location"] = f"/api/cases/{case_id}{path}/{row.id}"
        return Out.model_validate(row)

    @router.get(path, response_model=Page[Out])  # type: ignore[valid-type]
    async def list_records(
        case_id: str,
        session: SessionDep,
        _actor: ActorDep,
        criteria: list[Any] = Depends(record.list_filters),  # noqa: B008
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Any:
        await load_case(session, case_id)
        rows, next_cursor = await repository.list_children(
            session, record.model, case_id, cursor, limit, *criteria, options=record.load_options
        )
        return {"items": [Out.model_validate(r) for r in rows], "next_cursor": next_cursor}

    @router.get(path + "/{record_id}", response_model=Out)
    async def read(
        case_id: str, record_id: str, session: SessionDep, _actor: ActorDep, response: Response
    ) -> Any:
        row = await load_child(session, record.model, case_id, record_id, *record.load_options)
        set_etag(response, row.version)
        return Out.model_validate(row)

    @router.patch(path + "/{record_id}", response_model=Out, responses=UPDATE_PROBLEMS)
    async def update(
        case_id: str,
        record_id: str,
        body: Update,  # type: ignore[valid-type]
        session: SessionDep,
        actor: ActorDep,
        response: Response,
        if_match: IfMatch = None,
    ) -> Any:
        expected = required_version(if_match)
        case = await load_open_case(session, case_id)
        row = await load_child(session, record.model, case_id, record_id, *record.load_options)
        row = await record.update(session, actor, case, row, body, expected)
        row = await reload(session, case_id, row.id)
        set_etag(response, row.version)
        return Out.model_validate(row)

    return router
