"""`/api/patients/{id}/ehr-links`: say which EHR patient a local patient is, by hand (a pull
makes the same links itself). Every case of a linked patient is pushed to that EHR."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import delete

from service.api.problems import CREATE_PROBLEMS, PROBLEM_RESPONSES
from service.auth.deps import ActorDep
from service.connections.service import load_connection
from service.db.session import SessionDep
from service.errors import Conflict, NotFound
from service.links import repository
from service.links.models import PatientLink
from service.links.schemas import PatientLinkIn, PatientLinkOut
from service.patients.service import load_patient

router = APIRouter(
    prefix="/api/patients/{patient_id}/ehr-links", tags=["patients"], responses=PROBLEM_RESPONSES
)


@router.get("")
async def get_links(patient_id: str, session: SessionDep, _actor: ActorDep) -> list[PatientLinkOut]:
    await load_patient(session, patient_id)
    links = await repository.patient_links(session, patient_id)
    return [PatientLinkOut.model_validate(link) for link in links]


@router.post("", status_code=status.HTTP_201_CREATED, responses=CREATE_PROBLEMS)
async def post_link(
    patient_id: str, body: PatientLinkIn, session: SessionDep, _actor: ActorDep, response: Response
) -> PatientLinkOut:
    await load_patient(session, patient_id)
    await load_connection(session, body.connection_id)
    link = await repository.link_patient(session, body.connection_id, patient_id, body.remote_id)
    if link.patient_id != patient_id:
        raise Conflict(
            f"Patient/{body.remote_id} on that connection is already linked to patient "
            f"{link.patient_id}; unlink it there first"
        )
    response.headers["Location"] = f"/api/patients/{patient_id}/ehr-links/{link.id}"
    return PatientLinkOut.model_validate(link)


@router.delete("/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_link(
    patient_id: str, link_id: str, session: SessionDep, _actor: ActorDep
) -> Response:
    result = await session.execute(
        delete(PatientLink).where(PatientLink.id == link_id, PatientLink.patient_id == patient_id)
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"patient {patient_id} has no EHR link {link_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
