"""Rules of the SMART authorization server: registering clients, granting scopes, and
introspecting tokens. Services flush; the request boundary commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.api.concurrency import check_version
from service.db.session import Database
from service.ehr.errors import EhrUrlRefused
from service.ehr.url_policy import UrlPolicy
from service.errors import NotFound, RuleViolation, Unauthenticated, UnprocessableEntity
from service.fhir_auth import repository
from service.fhir_auth.access_tokens import verify_access_token
from service.fhir_auth.models import FhirClient
from service.fhir_auth.oauth_errors import OAuthError
from service.fhir_auth.runtime import FhirAuthRuntime
from service.fhir_auth.schemas import FhirClientCreate, FhirClientUpdate, IntrospectionResponse
from service.fhir_auth.scopes import InvalidScope, Scope, is_covered, parse_scopes
from service.settings import Settings

INACTIVE = IntrospectionResponse(active=False)


async def check_jwks_url(url: str | None, policy: UrlPolicy) -> None:
    """Refuse, at registration, a JWKS URL the SSRF policy would refuse at token time."""
    if url is None:
        return
    try:
        await policy.check(url)
    except EhrUrlRefused as exc:
        raise UnprocessableEntity(f"jwks_url is refused: {exc.detail}") from exc


async def load_client(session: AsyncSession, client_id: str) -> FhirClient:
    client = await repository.get_client(session, client_id)
    if client is None:
        raise NotFound(f"no FHIR client {client_id}")
    return client


async def register_client(session: AsyncSession, data: FhirClientCreate) -> FhirClient:
    client_id = data.client_id or str(uuid.uuid4())
    if await repository.client_id_taken(session, client_id):
        raise RuleViolation("fhir-client.client_id.unique", f"client {client_id!r} exists")
    client = FhirClient(
        client_id=client_id,
        name=data.name,
        scopes=data.scopes,
        jwks_url=data.jwks_url,
        jwks=data.jwks,
        enabled=data.enabled,
    )
    session.add(client)
    await session.flush()
    return client


async def update_client(
    session: AsyncSession, client: FhirClient, data: FhirClientUpdate, expected: int | None
) -> FhirClient:
    check_version(client.version, expected)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "scopes", "enabled"):
        if changes.get(name) is not None:
            setattr(client, name, changes[name])
    if data.jwks_url is not None:
        client.jwks_url, client.jwks = data.jwks_url, None
    elif data.jwks is not None:
        client.jwks_url, client.jwks = None, data.jwks
    await session.flush()
    return client


async def delete_client(session: AsyncSession, client: FhirClient, expected: int | None) -> None:
    check_version(client.version, expected)
    await session.delete(client)
    await session.flush()


async def list_clients(session: AsyncSession) -> Sequence[FhirClient]:
    return await repository.list_clients(session)


def grant_scopes(requested: str | None, client: FhirClient) -> tuple[Scope, ...]:
    """The scopes to grant: every requested resource scope, if the client's allowed scopes
    cover it; `invalid_scope` otherwise (nothing is silently narrowed)."""
    if not requested:
        raise OAuthError("invalid_scope", "scope is required, e.g. system/CarePlan.rs")
    try:
        scopes = parse_scopes(requested, strict=True)
    except InvalidScope as exc:
        raise OAuthError("invalid_scope", str(exc)) from exc
    if not scopes:
        raise OAuthError("invalid_scope", "request at least one resource scope")
    allowed = [Scope.parse(text) for text in client.scopes]
    for scope in scopes:
        if not is_covered(scope, allowed):
            raise OAuthError(
                "invalid_scope", f"{scope.text} is more than client {client.client_id} may have"
            )
    return scopes


async def introspect(
    database: Database,
    runtime: FhirAuthRuntime,
    settings: Settings,
    token: str,
    *,
    caller_client_id: str | None,
) -> IntrospectionResponse:
    """RFC 7662 for our own tokens. A client may introspect only its own tokens (others look
    inactive to it); an admin may introspect any. A disabled or deleted client's tokens are
    inactive."""
    try:
        claims: dict[str, Any] = await verify_access_token(database, runtime, settings, token)
    except Unauthenticated:
        return INACTIVE
    client_id = claims["client_id"]
    if caller_client_id is not None and caller_client_id != client_id:
        return INACTIVE
    async with database.transaction(write=False) as session:
        client = await repository.get_client(session, client_id)
    if client is None or not client.enabled:
        return INACTIVE
    patient = claims.get("patient")
    return IntrospectionResponse(
        active=True,
        scope=claims["scope"],
        client_id=client_id,
        sub=claims["sub"],
        patient=patient if isinstance(patient, str) else None,
        exp=claims["exp"],
        iat=claims.get("iat"),
        iss=claims["iss"],
        aud=claims["aud"],
        jti=claims.get("jti"),
        token_type="bearer",
    )
