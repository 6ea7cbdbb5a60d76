from __future__ import annotations

from fastapi import APIRouter, status

from service.api.problems import ADMIN_PROBLEMS, CREATE_PROBLEMS
from service.auth import service
from service.auth.deps import AdminDep
from service.auth.schemas import ApiKeyCreate, ApiKeyIssued, ApiKeyOut
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
