"""HTTP of the SMART authorization server: the admin client registry, the token and
introspection endpoints, and the SMART configuration document. Rules live in `service.py`,
client authentication in `assertions.py`.

JWKS URLs are checked (DNS) and fetched outside any database transaction.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response, status

from service.admission.rate_limits import limit_token_requests
from service.api.concurrency import IfMatch, required_version, set_etag
from service.api.problems import ADMIN_PROBLEMS, CREATE_PROBLEMS, UPDATE_PROBLEMS
from service.auth.deps import AdminDep, authenticate
from service.db.session import DatabaseDep, SessionDep
from service.ehr.deps import UrlPolicyDep
from service.errors import Unauthenticated
from service.fhir_auth import service
from service.fhir_auth.access_tokens import issue_access_token
from service.fhir_auth.assertions import ASSERTION_ALGORITHMS, authenticate_client
from service.fhir_auth.models import FhirClient
from service.fhir_auth.oauth_errors import NO_STORE, InvalidClient, OAuthError, OAuthRoute
from service.fhir_auth.runtime import (
    RuntimeDep,
    fhir_auth_lifespan,
    introspection_url,
    token_url,
)
from service.fhir_auth.schemas import (
    FhirClientCreate,
    FhirClientOut,
    FhirClientUpdate,
    IntrospectionResponse,
    SmartConfiguration,
    TokenResponse,
)

admin_router = APIRouter(prefix="/api/admin/fhir-clients", tags=["admin"], responses=ADMIN_PROBLEMS)
oauth_router = APIRouter(
    prefix="/auth", tags=["smart"], route_class=OAuthRoute, lifespan=fhir_auth_lifespan
)
smart_configuration_router = APIRouter(tags=["smart"])

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
CLIENT_CREDENTIALS = "client_credentials"
# Resource types whose scopes are advertised; the /fhir router owns what it really serves.
ADVERTISED_RESOURCE_TYPES = (
    "CarePlan",
    "CareTeam",
    "Condition",
    "Goal",
    "Organization",
    "Patient",
    "Practitioner",
    "Provenance",
    "ServiceRequest",
)


def _out(client: FhirClient, response: Response) -> FhirClientOut:
    set_etag(response, client.version)
    return FhirClientOut.model_validate(client)


@admin_router.post("", status_code=status.HTTP_201_CREATED, responses=CREATE_PROBLEMS)
async def post_fhir_client(
    body: FhirClientCreate,
    database: DatabaseDep,
    policy: UrlPolicyDep,
    _admin: AdminDep,
    response: Response,
) -> FhirClientOut:
    """Register an app for SMART Backend Services, by JWKS URL or by inline JWKS."""
    await service.check_jwks_url(body.jwks_url, policy)
    async with database.transaction() as session:
        client = await service.register_client(session, body)
    response.headers["Location"] = f"{admin_router.prefix}/{client.client_id}"
    return _out(client, response)


@admin_router.get("")
async def get_fhir_clients(session: SessionDep, _admin: AdminDep) -> list[FhirClientOut]:
    return [FhirClientOut.model_validate(c) for c in await service.list_clients(session)]


@admin_router.get("/{client_id}")
async def get_fhir_client(
    client_id: str, session: SessionDep, _admin: AdminDep, response: Response
) -> FhirClientOut:
    return _out(await service.load_client(session, client_id), response)


@admin_router.patch("/{client_id}", responses=UPDATE_PROBLEMS)
async def patch_fhir_client(
    client_id: str,
    body: FhirClientUpdate,
    database: DatabaseDep,
    runtime: RuntimeDep,
    policy: UrlPolicyDep,
    _admin: AdminDep,
    response: Response,
    if_match: IfMatch = None,
) -> FhirClientOut:
    """Change a client (If-Match required). Disabling it stops its issued tokens too: on this
    process at once, on others within seconds (see `EnabledClients`)."""
    expected = required_version(if_match)
    await service.check_jwks_url(body.jwks_url, policy)
    async with database.transaction() as session:
        client = await service.load_client(session, client_id)
        client = await service.update_client(session, client, body, expected)
    runtime.enabled_clients.forget()  # committed: read the registry again
    return _out(client, response)


@admin_router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_fhir_client(
    client_id: str,
    database: DatabaseDep,
    runtime: RuntimeDep,
    _admin: AdminDep,
    if_match: IfMatch = None,
) -> None:
    """Remove a client; If-Match is optional here. Its issued tokens stop working, as a
    disabled client's do."""
    expected = None if if_match is None else required_version(if_match)
    async with database.transaction() as session:
        client = await service.load_client(session, client_id)
        await service.delete_client(session, client, expected)
    runtime.enabled_clients.forget()


async def _form(request: Request) -> dict[str, str]:
    """The form parameters; each may appear once (RFC 6749 section 3.2)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError("invalid_request", f"send the parameters as {FORM_MEDIA_TYPE}")
    try:
        parsed = parse_qs((await request.body()).decode(), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the form body cannot be read") from exc
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"parameters sent more than once: {repeated}")
    return {name: values[0] for name, values in parsed.items()}


def _form_body(*fields: str) -> dict[str, Any]:
    properties = {name: {"type": "string"} for name in fields}
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"required": True, "content": {FORM_MEDIA_TYPE: {"schema": schema}}}}


OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "RFC 6749 error (invalid_request, invalid_scope, ...)"},
    401: {"description": "RFC 6749 invalid_client"},
}


@oauth_router.post(
    "/token",
    responses=OAUTH_ERRORS,
    dependencies=[Depends(limit_token_requests)],
    openapi_extra=_form_body(
        "grant_type", "scope", "client_id", "client_assertion_type", "client_assertion"
    ),
)
async def post_token(
    request: Request,
    database: DatabaseDep,
    runtime: RuntimeDep,
    policy: UrlPolicyDep,
    response: Response,
) -> TokenResponse:
    """SMART Backend Services: `client_credentials` with a `private_key_jwt` assertion."""
    form = await _form(request)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != CLIENT_CREDENTIALS:
        raise OAuthError("unsupported_grant_type", f"only {CLIENT_CREDENTIALS} is supported")
    client = await authenticate_client(
        database,
        runtime,
        policy,
        form.get("client_assertion_type"),
        form.get("client_assertion"),
        form.get("client_id"),
    )
    scopes = service.grant_scopes(form.get("scope"), client)
    body = await issue_access_token(database, runtime, database.settings, client.client_id, scopes)
    response.headers.update(NO_STORE)
    return TokenResponse.model_validate(body)


@oauth_router.post(
    "/introspect",
    responses=OAUTH_ERRORS,
    response_model_exclude_none=True,
    openapi_extra=_form_body("token", "client_assertion_type", "client_assertion"),
)
async def post_introspect(
    request: Request,
    database: DatabaseDep,
    runtime: RuntimeDep,
    policy: UrlPolicyDep,
    response: Response,
) -> IntrospectionResponse:
    """RFC 7662. Authenticate as a registered client (`private_key_jwt`, as at the token
    endpoint; a client sees only its own tokens as active) or with an admin API key
    (`X-API-Key`; sees every token)."""
    form = await _form(request)
    caller: str | None
    api_key = request.headers.get("x-api-key")
    if api_key is not None:
        try:
            actor = await authenticate(request, database, api_key, None)
        except Unauthenticated as exc:
            raise InvalidClient(exc.detail) from exc
        if not actor.is_admin:
            raise InvalidClient("introspection with an API key needs the admin role")
        caller = None
    else:
        client = await authenticate_client(
            database,
            runtime,
            policy,
            form.get("client_assertion_type"),
            form.get("client_assertion"),
            form.get("client_id"),
        )
        caller = client.client_id
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    response.headers.update(NO_STORE)
    return await service.introspect(
        database, runtime, database.settings, token, caller_client_id=caller
    )


@smart_configuration_router.get("/fhir/.well-known/smart-configuration")
async def get_smart_configuration(database: DatabaseDep) -> SmartConfiguration:
    """How apps get tokens for /fhir (SMART App Launch 2.x discovery)."""
    settings = database.settings
    scopes = ["system/*.cruds", "system/*.rs", "system/*.read", "system/*.write"]
    for resource_type in ADVERTISED_RESOURCE_TYPES:
        scopes += [f"system/{resource_type}.cruds", f"system/{resource_type}.rs"]
    return SmartConfiguration(
        token_endpoint=token_url(settings),
        introspection_endpoint=introspection_url(settings),
        grant_types_supported=[CLIENT_CREDENTIALS],
        token_endpoint_auth_methods_supported=["private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported=list(ASSERTION_ALGORITHMS),
        scopes_supported=scopes,
        capabilities=["client-confidential-asymmetric", "permission-v2", "permission-v1"],
    )
