"""Admin API of the connection registry: HTTP only, rules live in `service.py`.

Discovery talks to the EHR before a transaction opens, so no database lock is held across a
network call to a slow EHR.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response, status

from service.api.concurrency import IfMatch, required_version, set_etag
from service.api.pagination import Cursor, Limit, Page
from service.api.problems import ADMIN_PROBLEMS, CREATE_PROBLEMS, UPDATE_PROBLEMS, problems
from service.auth.deps import AdminDep
from service.connections import repository, service
from service.connections.fhir_clients import backend_services_grant
from service.connections.models import Connection
from service.connections.schemas import (
    ConnectionCreate,
    ConnectionOut,
    ConnectionUpdate,
    KeyOut,
    KeyRotation,
    TokenCheckOut,
)
from service.db.session import DatabaseDep, SessionDep
from service.ehr.deps import UrlPolicyDep
from service.settings import Settings
from service.smart.deps import BackendTokensDep, SecretBoxDep

router = APIRouter(prefix="/api/admin/connections", tags=["admin"], responses=ADMIN_PROBLEMS)
EHR_PROBLEMS = problems(409, 413) | {502: {"description": "The EHR failed or misbehaved"}}


def connection_jwks_url(settings: Settings, connection_id: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/smart/connections/{connection_id}/jwks.json"


def _out(connection: Connection, settings: Settings, response: Response) -> ConnectionOut:
    set_etag(response, connection.version)
    return ConnectionOut(
        id=connection.id,
        version=connection.version,
        created_at=connection.created_at,
        updated_at=connection.updated_at,
        name=connection.name,
        base_url=connection.base_url,
        auth_mode=connection.auth_mode,
        client_id=connection.client_id,
        scopes=connection.scopes,
        signing_alg=connection.signing_alg,
        capabilities=service.stored_capabilities(connection),
        discovered_at=connection.discovered_at,
        document_fallback=connection.document_fallback,
        pull_scope=connection.pull_scope,
        effective_pull_scope=service.connection_pull_scope(connection, settings),
        search_overrides=connection.search_overrides,
        probed_searches=service.probed_searches(connection),
        keys=[KeyOut.model_validate(key) for key in connection.keys],
        jwks_url=connection_jwks_url(settings, connection.id),
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=CREATE_PROBLEMS | EHR_PROBLEMS)
async def post_connection(
    body: ConnectionCreate,
    database: DatabaseDep,
    _admin: AdminDep,
    policy: UrlPolicyDep,
    box: SecretBoxDep,
    response: Response,
) -> ConnectionOut:
    """Register an EHR: discovery runs first, and a refused or failed discovery stores nothing."""
    capabilities = await service.discover_capabilities(
        body.base_url, body.auth_mode, database.settings, policy
    )
    async with database.transaction() as session:
        connection = await service.create_connection(session, body, capabilities, box)
    response.headers["Location"] = f"{router.prefix}/{connection.id}"
    return _out(connection, database.settings, response)


@router.get("")
async def get_connections(
    session: SessionDep,
    database: DatabaseDep,
    _admin: AdminDep,
    response: Response,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ConnectionOut]:
    rows, next_cursor = await repository.list_connections(session, cursor=cursor, limit=limit)
    items = [_out(row, database.settings, Response()) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{connection_id}")
async def get_connection(
    connection_id: str,
    session: SessionDep,
    database: DatabaseDep,
    _admin: AdminDep,
    response: Response,
) -> ConnectionOut:
    connection = await service.load_connection(session, connection_id, probes=True)
    return _out(connection, database.settings, response)


@router.patch("/{connection_id}", responses=UPDATE_PROBLEMS | EHR_PROBLEMS)
async def patch_connection(
    connection_id: str,
    body: ConnectionUpdate,
    database: DatabaseDep,
    _admin: AdminDep,
    policy: UrlPolicyDep,
    tokens: BackendTokensDep,
    response: Response,
    if_match: IfMatch = None,
) -> ConnectionOut:
    """A new `base_url` is discovered before it is stored. Cached Backend Services tokens of
    the connection are dropped: they were issued for the old client id, scopes or server."""
    expected = required_version(if_match)
    capabilities = None
    if body.base_url is not None:
        async with database.transaction(write=False) as session:
            current = await service.load_connection(session, connection_id, probes=True)
        capabilities = await service.discover_capabilities(
            body.base_url, current.auth_mode, database.settings, policy
        )
    async with database.transaction() as session:
        connection = await service.load_connection(session, connection_id, probes=True)
        connection = await service.update_connection(
            session, connection, body, expected, capabilities
        )
    await tokens.forget_shared(connection_id)
    return _out(connection, database.settings, response)


@router.delete(
    "/{connection_id}", status_code=status.HTTP_204_NO_CONTENT, responses=UPDATE_PROBLEMS
)
async def delete_connection(
    connection_id: str,
    session: SessionDep,
    _admin: AdminDep,
    tokens: BackendTokensDep,
    if_match: IfMatch = None,
) -> None:
    expected = required_version(if_match)
    connection = await service.load_connection(session, connection_id, probes=True)
    await service.delete_connection(session, connection, expected)
    tokens.forget(connection_id)


@router.post("/{connection_id}/keys/rotate", responses=UPDATE_PROBLEMS)
async def rotate_connection_key(
    connection_id: str,
    session: SessionDep,
    database: DatabaseDep,
    _admin: AdminDep,
    box: SecretBoxDep,
    response: Response,
    body: KeyRotation | None = None,
    if_match: IfMatch = None,
) -> ConnectionOut:
    """Publish a new key at once; it signs after `CASEBRIDGE_SMART_KEY_OVERLAP_SECONDS` (or on
    `…/keys/activate`), so EHRs that cache our JWKS see it before they meet it. A second
    rotation while one is pending is refused (409)."""
    expected = required_version(if_match)
    connection = await service.load_connection(session, connection_id, probes=True)
    alg = body.signing_alg if body is not None else None
    overlap = dt.timedelta(seconds=database.settings.smart_key_overlap_seconds)
    connection = await service.rotate_key(session, connection, alg, box, expected, overlap)
    return _out(connection, database.settings, response)


@router.post("/{connection_id}/keys/activate", responses=UPDATE_PROBLEMS)
async def activate_connection_key(
    connection_id: str,
    session: SessionDep,
    database: DatabaseDep,
    _admin: AdminDep,
    response: Response,
    if_match: IfMatch = None,
) -> ConnectionOut:
    """Let the pending key sign now, once the EHR is known to have the new JWKS (409 when no
    key is pending)."""
    expected = required_version(if_match)
    connection = await service.load_connection(session, connection_id, probes=True)
    connection = await service.activate_key(session, connection, expected)
    return _out(connection, database.settings, response)


@router.post("/{connection_id}/discover", responses=EHR_PROBLEMS)
async def rediscover_connection(
    connection_id: str,
    database: DatabaseDep,
    _admin: AdminDep,
    policy: UrlPolicyDep,
    response: Response,
) -> ConnectionOut:
    """Read the EHR's smart-configuration and /metadata again and store what they say now."""
    async with database.transaction(write=False) as session:
        current = await service.load_connection(session, connection_id, probes=True)
    capabilities = await service.discover_capabilities(
        current.base_url, current.auth_mode, database.settings, policy
    )
    async with database.transaction() as session:
        connection = await service.load_connection(session, connection_id, probes=True)
        service.store_capabilities(connection, capabilities)
        await session.flush()
    return _out(connection, database.settings, response)


@router.post("/{connection_id}/token-check", responses=EHR_PROBLEMS)
async def check_token(
    connection_id: str,
    database: DatabaseDep,
    _admin: AdminDep,
    box: SecretBoxDep,
    tokens: BackendTokensDep,
) -> TokenCheckOut:
    """Request a Backend Services token now, with the connection's key and scopes. A refusal
    comes back as a problem naming the OAuth error (`invalid_client`, `invalid_scope`...)."""
    async with database.transaction(write=False) as session:
        connection = await service.load_connection(session, connection_id, probes=True)
    grant = backend_services_grant(connection, box)
    token = await tokens.fresh_token(grant)
    return TokenCheckOut(
        token_endpoint=grant.token_endpoint,
        kid=grant.signing_key.kid,
        alg=grant.signing_key.alg,
        granted_scope=token.scope,
        expires_at=dt.datetime.fromtimestamp(token.expires_at, dt.UTC),
    )
