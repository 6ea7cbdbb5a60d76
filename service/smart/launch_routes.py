"""SMART App Launch endpoints (browser-facing, no API key): EHR launch, standalone launch, the
OAuth callback, and refresh of a launch's tokens.

The browser session is an HttpOnly, SameSite=Lax cookie scoped to /smart; Lax still sends it on
the EHR's top-level redirect back to the callback, and never on a cross-site POST.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Query
from fastapi.responses import RedirectResponse

from service.api.problems import problems
from service.connections.service import load_connection, stored_capabilities
from service.db.base import utcnow
from service.db.session import DatabaseDep
from service.ehr.deps import UrlPolicyDep
from service.ehr.url_policy import UrlPolicy
from service.settings import Settings
from service.smart import launch_service as launches
from service.smart.app_launch_oauth import LaunchTokens
from service.smart.deps import SecretBoxDep
from service.smart.grant_locks import GrantLocksDep
from service.smart.id_token import verified_id_token_claims
from service.smart.launch_errors import AuthorizationRefused, LaunchError
from service.smart.launch_schemas import LaunchGrantOut

SESSION_COOKIE = "casebridge_smart_session"
router = APIRouter(prefix="/smart", tags=["smart"], responses=problems(400, 404, 422, 500))
BrowserSession = Annotated[str | None, Cookie(alias=SESSION_COOKIE)]
EHR_FAILURE: dict[int | str, dict[str, Any]] = {
    502: {"description": "The EHR's token endpoint failed or refused the exchange"}
}


def _redirect_uri(settings: Settings) -> str:
    return f"{settings.public_base_url.rstrip('/')}/smart/callback"


def _to_authorization(url: str, browser_session_id: str, settings: Settings) -> RedirectResponse:
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        SESSION_COOKIE,
        browser_session_id,
        path="/smart",
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https://"),
    )
    return response


async def _start(
    database: DatabaseDep,
    box: SecretBoxDep,
    browser_session: str | None,
    *,
    iss: str | None,
    connection_id: str | None,
    launch: str | None,
) -> RedirectResponse:
    browser_session_id = browser_session or launches.new_browser_session_id()
    async with database.transaction() as session:
        if iss is not None:
            connection = await launches.launch_connection_for_iss(session, iss)
        else:
            assert connection_id is not None
            connection = await launches.launch_connection_by_id(session, connection_id)
        url = await launches.begin_launch(
            session,
            connection,
            browser_session_id=browser_session_id,
            launch=launch,
            box=box,
            redirect_uri=_redirect_uri(database.settings),
            now=utcnow(),
        )
    return _to_authorization(url, browser_session_id, database.settings)


@router.get("/launch", status_code=302, response_class=RedirectResponse)
async def ehr_launch(
    database: DatabaseDep,
    box: SecretBoxDep,
    iss: Annotated[str, Query(description="The launching EHR's FHIR base URL")],
    launch: Annotated[str, Query(description="The EHR's opaque launch context handle")],
    browser_session: BrowserSession = None,
) -> RedirectResponse:
    """EHR launch: the EHR opens this URL; `iss` must be a registered App Launch connection."""
    return await _start(database, box, browser_session, iss=iss, connection_id=None, launch=launch)


@router.get("/connections/{connection_id}/launch", status_code=302, response_class=RedirectResponse)
async def standalone_launch(
    connection_id: str,
    database: DatabaseDep,
    box: SecretBoxDep,
    browser_session: BrowserSession = None,
) -> RedirectResponse:
    """Standalone launch: the user starts here and picks the EHR by its connection."""
    return await _start(
        database, box, browser_session, iss=None, connection_id=connection_id, launch=None
    )


def _launch_tokens(policy: UrlPolicy, settings: Settings) -> LaunchTokens:
    return LaunchTokens(policy, timeout_seconds=settings.ehr_timeout_seconds)


@router.get("/callback", responses=EHR_FAILURE)
async def callback(
    database: DatabaseDep,
    box: SecretBoxDep,
    policy: UrlPolicyDep,
    browser_session: BrowserSession = None,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> LaunchGrantOut:
    """The EHR sends the browser back here. The state is checked and claimed first (even on an
    error answer), then the code is exchanged and the tokens stored encrypted."""
    async with database.transaction() as session:
        pending = await launches.claim_launch_state(session, state, browser_session, utcnow())
        connection = await load_connection(session, pending.connection_id)
        client = launches.launch_client(connection, box, pending.redirect_uri)
        code_verifier = box.decrypt_text(pending.encrypted_code_verifier)
    # The claim is committed: whatever happens next, this state cannot be used again.
    if error is not None:
        raise AuthorizationRefused(error, error_description)
    if not code:
        raise LaunchError("the authorization response carries neither a code nor an error")
    token = await _launch_tokens(policy, database.settings).exchange_code(
        client, code, code_verifier
    )
    claims = None
    id_token = token.extra.get("id_token")
    smart = stored_capabilities(connection)
    jwks_uri = smart.smart.jwks_uri if smart and smart.smart else None
    if isinstance(id_token, str) and jwks_uri is not None:
        claims = await verified_id_token_claims(
            id_token,
            jwks_uri=jwks_uri,
            issuer=smart.smart.issuer if smart and smart.smart else None,
            client_id=client.client_id,
            policy=policy,
            timeout_seconds=database.settings.ehr_timeout_seconds,
        )
    async with database.transaction() as session:
        grant = await launches.store_grant(
            session, pending, token, launches.launch_context(token, claims), box
        )
    return LaunchGrantOut.model_validate(grant)


@router.get("/grants/{grant_id}")
async def get_grant(
    grant_id: str, database: DatabaseDep, browser_session: BrowserSession = None
) -> LaunchGrantOut:
    async with database.transaction(write=False) as session:
        grant = await launches.load_grant(session, grant_id, browser_session)
    return LaunchGrantOut.model_validate(grant)


@router.post("/grants/{grant_id}/refresh", responses=EHR_FAILURE | problems(412))
async def refresh_grant(
    grant_id: str,
    database: DatabaseDep,
    box: SecretBoxDep,
    policy: UrlPolicyDep,
    locks: GrantLocksDep,
    browser_session: BrowserSession = None,
) -> LaunchGrantOut:
    """Use the refresh token once; the rotated one the EHR returns replaces it."""
    async with locks.for_grant(grant_id):
        async with database.transaction(write=False) as session:
            grant = await launches.load_grant(session, grant_id, browser_session)
            connection = await load_connection(session, grant.connection_id)
            client = launches.launch_client(connection, box, _redirect_uri(database.settings))
            refresh_token = launches.refresh_token_of(grant, box)
            version = grant.version
        token = await _launch_tokens(policy, database.settings).refresh(client, refresh_token)
        async with database.transaction() as session:
            grant = await launches.load_grant(session, grant_id, browser_session)
            grant = await launches.store_refreshed(session, grant, token, box, version)
    return LaunchGrantOut.model_validate(grant)
