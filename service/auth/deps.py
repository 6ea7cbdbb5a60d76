"""Who is calling: every /api request is authenticated by an API key or an OIDC bearer JWT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from service.auth.api_keys import hash_api_key, matches
from service.auth.models import ApiKey, Role
from service.db.session import DatabaseDep
from service.errors import Forbidden, Unauthenticated

BOOTSTRAP_ACTOR = "apikey:bootstrap"

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Actor:
    """The authenticated caller, recorded on every change (`user:<sub>` or `apikey:<name>`)."""

    id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin


async def authenticate(
    request: Request,
    database: DatabaseDep,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    actor = await _identify(request, database, api_key, bearer)
    # The audit of this request names who asked (service/audit/middleware.py).
    request.state.audit_agent = actor.id
    return actor


async def _identify(
    request: Request,
    database: DatabaseDep,
    api_key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
) -> Actor:
    settings = database.settings
    if api_key is not None:
        bootstrap = settings.bootstrap_api_key
        if bootstrap is not None and matches(api_key, bootstrap.get_secret_value()):
            return Actor(BOOTSTRAP_ACTOR, Role.admin)
        async with database.sessions() as session:
            row = await session.scalar(
                select(ApiKey).where(
                    ApiKey.key_hash == hash_api_key(api_key), ApiKey.revoked_at.is_(None)
                )
            )
        if row is None:
            raise Unauthenticated("unknown or revoked API key")
        return Actor(f"apikey:{row.name}", row.role)
    if bearer is not None:
        verifier = request.app.state.oidc_verifier
        if verifier is None:
            raise Unauthenticated("bearer tokens are not accepted: no OIDC issuer is configured")
        claims = await verifier.verify(bearer.credentials)
        roles = claims.get("roles") or []
        role = Role.admin if isinstance(roles, list) and "admin" in roles else Role.case_manager
        return Actor(f"user:{claims['sub']}", role)
    raise Unauthenticated("send an API key (X-API-Key) or a bearer token")


async def require_admin(actor: Annotated[Actor, Depends(authenticate)]) -> Actor:
    if not actor.is_admin:
        raise Forbidden("this operation needs the admin role")
    return actor


ActorDep = Annotated[Actor, Depends(authenticate)]
AdminDep = Annotated[Actor, Depends(require_admin)]
