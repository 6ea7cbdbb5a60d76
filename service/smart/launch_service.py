"""SMART App Launch rules.

- An `iss` must be the base URL of a registered App Launch connection; nothing else is ever
  contacted on a launcher's say-so.
- Each authorization request has its own `state` and PKCE verifier, stored server-side (hashed
  state, encrypted verifier), bound to the browser session, valid for `LAUNCH_STATE_TTL` and
  claimed at most once.
- The tokens a launch obtains are stored encrypted with the launch context; a refresh stores
  the rotated refresh token and discards the one it used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from authlib.common.security import generate_token
from sqlalchemy.ext.asyncio import AsyncSession

from service.api.concurrency import check_version
from service.connections import repository as connections
from service.connections.models import AuthMode, Connection
from service.connections.service import normalise_base_url, signing_key, stored_capabilities
from service.ehr.errors import EhrDiscoveryError
from service.errors import NotFound
from service.security.encryption import SecretBox
from service.smart import launch_repository as repository
from service.smart.app_launch_oauth import LaunchClient, authorization_url
from service.smart.launch_errors import LaunchError, LaunchStateRejected, UnregisteredIssuer
from service.smart.models import LaunchGrant, LaunchState
from service.smart.token_requests import TokenResponse

LAUNCH_STATE_TTL = dt.timedelta(minutes=10)
# Expired states are kept this long so a late callback hears "expired", not "unknown".
EXPIRED_STATE_RETENTION = dt.timedelta(days=1)
STATE_LENGTH = 43  # > 256 bits from a 62-character alphabet
CODE_VERIFIER_LENGTH = 64  # RFC 7636: 43..128 unreserved characters


def fingerprint(secret: str) -> str:
    """What the database keeps of a state or a browser session id: never the value itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_browser_session_id() -> str:
    return str(generate_token(43))


async def launch_connection_for_iss(session: AsyncSession, iss: str) -> Connection:
    for connection in await connections.find_by_base_url(session, normalise_base_url(iss)):
        if connection.auth_mode is AuthMode.app_launch:
            return connection
    raise UnregisteredIssuer(iss)


async def launch_connection_by_id(session: AsyncSession, connection_id: str) -> Connection:
    connection = await connections.get_connection(session, connection_id)
    if connection is None or connection.auth_mode is not AuthMode.app_launch:
        raise NotFound(f"no App Launch connection {connection_id}")
    return connection


def launch_client(connection: Connection, box: SecretBox, redirect_uri: str) -> LaunchClient:
    capabilities = stored_capabilities(connection)
    smart = capabilities.smart if capabilities else None
    if smart is None or not smart.authorization_endpoint or connection.client_id is None:
        raise EhrDiscoveryError(
            "the connection has no discovered authorization endpoint; run discovery",
            url=connection.base_url,
        )
    confidential = "private_key_jwt" in smart.token_endpoint_auth_methods_supported or (
        "client-confidential-asymmetric" in smart.capabilities
    )
    return LaunchClient(
        client_id=connection.client_id,
        authorization_endpoint=smart.authorization_endpoint,
        token_endpoint=smart.token_endpoint,
        redirect_uri=redirect_uri,
        signing_key=signing_key(connection, box) if confidential else None,
    )


async def begin_launch(
    session: AsyncSession,
    connection: Connection,
    *,
    browser_session_id: str,
    launch: str | None,
    box: SecretBox,
    redirect_uri: str,
    now: dt.datetime,
) -> str:
    """Store a pending authorization and return the URL to send the browser to."""
    client = launch_client(connection, box, redirect_uri)
    await repository.purge_states(session, now - EXPIRED_STATE_RETENTION)
    state = str(generate_token(STATE_LENGTH))
    code_verifier = str(generate_token(CODE_VERIFIER_LENGTH))
    scopes = list(connection.scopes)
    if launch is not None and "launch" not in scopes:
        scopes.append("launch")  # an EHR launch must ask for the launch context
    session.add(
        LaunchState(
            state_hash=fingerprint(state),
            connection_id=connection.id,
            browser_session_hash=fingerprint(browser_session_id),
            encrypted_code_verifier=box.encrypt_text(code_verifier),
            redirect_uri=redirect_uri,
            launch=launch,
            created_at=now,
            expires_at=now + LAUNCH_STATE_TTL,
        )
    )
    await session.flush()
    return authorization_url(
        client,
        scopes=scopes,
        state=state,
        code_verifier=code_verifier,
        aud=connection.base_url,
        launch=launch,
    )


async def claim_launch_state(
    session: AsyncSession, state: str | None, browser_session_id: str | None, now: dt.datetime
) -> LaunchState:
    """The pending launch this callback answers, claimed so that it cannot be used again."""
    if not state:
        raise LaunchStateRejected("missing", "the authorization response carries no state")
    row = await repository.get_state(session, fingerprint(state))
    if row is None:
        raise LaunchStateRejected("unknown", "no launch is waiting for this state")
    if browser_session_id is None or fingerprint(browser_session_id) != row.browser_session_hash:
        # Not claimed: the browser that started the launch may still complete it.
        raise LaunchStateRejected(
            "wrong-session", "this launch was started in another browser session"
        )
    if row.used_at is not None:
        raise LaunchStateRejected("replayed", "this state was already used")
    if row.expires_at <= now:
        raise LaunchStateRejected("expired", "this launch expired; start it again")
    if not await repository.claim_state(session, row.state_hash, now):
        raise LaunchStateRejected("replayed", "this state was already used")
    return row


def launch_context(token: TokenResponse, id_token_claims: dict[str, Any] | None) -> dict[str, Any]:
    """patient, encounter and fhirUser: from the token response, fhirUser from a verified
    id_token when the response itself has none."""

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    fhir_user = text(token.extra.get("fhirUser"))
    if fhir_user is None and id_token_claims is not None:
        fhir_user = text(id_token_claims.get("fhirUser")) or text(id_token_claims.get("profile"))
    return {
        "patient": text(token.extra.get("patient")),
        "encounter": text(token.extra.get("encounter")),
        "fhir_user": fhir_user,
    }


def _expiry(token: TokenResponse) -> dt.datetime:
    return dt.datetime.fromtimestamp(token.expires_at, dt.UTC)


async def store_grant(
    session: AsyncSession,
    state: LaunchState,
    token: TokenResponse,
    context: dict[str, Any],
    box: SecretBox,
) -> LaunchGrant:
    grant = LaunchGrant(
        connection_id=state.connection_id,
        browser_session_hash=state.browser_session_hash,
        encrypted_access_token=box.encrypt_text(token.access_token),
        encrypted_refresh_token=(
            box.encrypt_text(token.refresh_token) if token.refresh_token else None
        ),
        scope=token.scope,
        expires_at=_expiry(token),
        patient=context["patient"],
        encounter=context["encounter"],
        fhir_user=context["fhir_user"],
    )
    session.add(grant)
    await session.flush()
    return grant


async def load_grant(
    session: AsyncSession, grant_id: str, browser_session_id: str | None
) -> LaunchGrant:
    """A grant, only for the browser session that obtained it (anyone else: 404)."""
    grant = await repository.get_grant(session, grant_id)
    if (
        grant is None
        or browser_session_id is None
        or fingerprint(browser_session_id) != grant.browser_session_hash
    ):
        raise NotFound(f"no launch grant {grant_id} in this browser session")
    return grant


def refresh_token_of(grant: LaunchGrant, box: SecretBox) -> str:
    if grant.encrypted_refresh_token is None:
        raise LaunchError(
            "the EHR granted no refresh token (ask for offline_access or online_access)"
        )
    return box.decrypt_text(grant.encrypted_refresh_token)


async def store_refreshed(
    session: AsyncSession,
    grant: LaunchGrant,
    token: TokenResponse,
    box: SecretBox,
    expected_version: int,
) -> LaunchGrant:
    """Rotate: the new refresh token replaces the used one. The version check makes a second,
    concurrent refresh of the same grant fail (412) instead of overwriting this one."""
    check_version(grant.version, expected_version)
    grant.encrypted_access_token = box.encrypt_text(token.access_token)
    if token.refresh_token is not None:
        grant.encrypted_refresh_token = box.encrypt_text(token.refresh_token)
    grant.scope = token.scope or grant.scope
    grant.expires_at = _expiry(token)
    await session.flush()
    return grant
