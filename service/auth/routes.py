from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from service.api.problems import ADMIN_PROBLEMS, CREATE_PROBLEMS
from service.auth import service
from service.auth.deps import AdminDep
from service.auth.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyOut,
    PractitionerOut,
    PractitionerSet,
)
from service.db.session import SessionDep

router = APIRouter(prefix="/api/admin/api-keys", tags=["admin"], responses=ADMIN_PROBLEMS)


@router.post("", status_code=status.HTTP_201_CREATED, responses=CREATE_PROBLEMS)
async def post_api_key(body: ApiKeyCreate, session: SessionDep, _admin: AdminDep) -> ApiKeyIssued:
    """Issue a service-account key. The key is shown in this response only."""
    row, key = await service.issue_api_key(session, body.name, body.role)
    return ApiKeyIssued(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get("")
async def get_api_keys(session: SessionDep, _admin: AdminDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(r) for r in await service.list_api_keys(session)]


@router.delete("/{key_id}")
async def delete_api_key(key_id: str, session: SessionDep, _admin: AdminDep) -> ApiKeyOut:
    """Revoke a key: it stops working at once; the record stays for the audit trail."""
    return ApiKeyOut.model_validate(await service.revoke_api_key(session, key_id))


practitioners = APIRouter(
    prefix="/api/admin/practitioners", tags=["admin"], responses=ADMIN_PROBLEMS
)
# Who acts, as changes record it: an OIDC user or an API key.
ActorPath = Annotated[str, Path(pattern=r"^(user|apikey):[^\s]{1,190}$")]


@practitioners.put("/{actor}")
async def put_practitioner(
    actor: ActorPath, body: PractitionerSet, session: SessionDep, admin: AdminDep
) -> PractitionerOut:
    """Set who `actor` (`user:<sub>` or `apikey:<name>`) is as a clinician: name and NPI.
    The cases it acts on then refer to a US Core Practitioner, pushed to the EHR with them."""
    row = await service.set_practitioner(session, actor, body, admin.id)
    return PractitionerOut.model_validate(row)


@practitioners.get("")
async def get_practitioners(session: SessionDep, _admin: AdminDep) -> list[PractitionerOut]:
    return [PractitionerOut.model_validate(r) for r in await service.list_practitioners(session)]


@practitioners.delete("/{actor}")
async def delete_practitioner(
    actor: ActorPath, session: SessionDep, admin: AdminDep
) -> PractitionerOut:
    """Remove an identity: the actor's cases name the service's Organization again."""
    return PractitionerOut.model_validate(
        await service.remove_practitioner(session, actor, admin.id)
    )
