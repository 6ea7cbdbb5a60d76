"""Our public keys, for EHRs that register apps by JWKS URL (Epic, Oracle Health).

`/.well-known/jwks.json` publishes every connection's keys; each connection also has its own
JWKS URL, for EHRs that want one key type per client. Only public members are ever stored in
`public_jwk`, and `build_jwks` drops keys whose grace period is over.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from service.connections import repository
from service.connections.service import load_connection
from service.db.base import utcnow
from service.db.session import SessionDep
from service.smart.keys import build_jwks

router = APIRouter(tags=["smart"])
# Far below the rotation grace period, so an EHR caching the JWKS sees a new key in time.
CACHE_CONTROL = "public, max-age=60"


def _jwks_response(jwks: dict[str, Any], response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = CACHE_CONTROL
    return jwks


@router.get("/.well-known/jwks.json", response_model=None)
async def service_jwks(session: SessionDep, response: Response) -> dict[str, Any]:
    """Every published key of every connection."""
    now = utcnow()
    return _jwks_response(build_jwks(await repository.published_keys(session, now), now), response)


@router.get("/smart/connections/{connection_id}/jwks.json", response_model=None)
async def connection_jwks(
    connection_id: str, session: SessionDep, response: Response
) -> dict[str, Any]:
    """The keys of one connection: its active key and any key still in its grace period."""
    await load_connection(session, connection_id)
    now = utcnow()
    keys = await repository.published_keys(session, now, connection_id)
    return _jwks_response(build_jwks(keys, now), response)


# HEAD answers as GET does, without a body (RFC 9110 §9.3.2): some EHRs probe a JWKS URL with
# HEAD at registration. Out of the OpenAPI document, where it would repeat GET's operation.
for _path, _endpoint in (
    ("/.well-known/jwks.json", service_jwks),
    ("/smart/connections/{connection_id}/jwks.json", connection_jwks),
):
    router.add_api_route(
        _path, _endpoint, methods=["HEAD"], response_model=None, include_in_schema=False
    )
