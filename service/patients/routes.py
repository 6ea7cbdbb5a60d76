from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from service.api.concurrency import IfMatch, required_version, set_etag
from service.api.pagination import Cursor, Limit, Page
from service.api.problems import CREATE_PROBLEMS, PROBLEM_RESPONSES, UPDATE_PROBLEMS
from service.audit.middleware import note_patients
from service.auth.deps import ActorDep
from service.db.session import SessionDep
from service.errors import BadRequest
from service.patients import repository
from service.patients.schemas import PatientCreate, PatientOut, PatientUpdate
from service.patients.service import create_patient, load_patient, update_patient

router = APIRouter(prefix="/api/patients", tags=["patients"], responses=PROBLEM_RESPONSES)


def _parse_identifier(token: str | None) -> tuple[str, str] | None:
    if token is None:
        return None
    system, sep, value = token.rpartition("|")
    if not sep or not system or not value:
        raise BadRequest("identifier must be system|value")
    return system, value


@router.post("", status_code=status.HTTP_201_CREATED, responses=CREATE_PROBLEMS)
async def post_patient(
    body: PatientCreate, session: SessionDep, actor: ActorDep, response: Response
) -> PatientOut:
    patient = await create_patient(session, actor, body)
    set_etag(response, patient.version)
    response.headers["Location"] = f"/api/patients/{patient.id}"
    return PatientOut.model_validate(patient)


@router.get("")
async def get_patients(
    request: Request,
    session: SessionDep,
    _actor: ActorDep,
    identifier: Annotated[str | None, Query(description="system|value")] = None,
    family_name: str | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[PatientOut]:
    rows, next_cursor = await repository.list_patients(
        session,
        identifier=_parse_identifier(identifier),
        family_name=family_name,
        cursor=cursor,
        limit=limit,
    )
    note_patients(request, {r.id for r in rows})
    return Page(items=[PatientOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{patient_id}")
async def get_patient(
    patient_id: str, session: SessionDep, _actor: ActorDep, response: Response
) -> PatientOut:
    patient = await load_patient(session, patient_id)
    set_etag(response, patient.version)
    return PatientOut.model_validate(patient)


@router.patch("/{patient_id}", responses=UPDATE_PROBLEMS)
async def patch_patient(
    patient_id: str,
    body: PatientUpdate,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
    if_match: IfMatch = None,
) -> PatientOut:
    expected = required_version(if_match)
    patient = await load_patient(session, patient_id)
    patient = await update_patient(session, actor, patient, body, expected)
    set_etag(response, patient.version)
    return PatientOut.model_validate(patient)
