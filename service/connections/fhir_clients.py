"""An authenticated `FhirClient` for a registered connection: the one place that turns a
connection row into a client, choosing the token provider by the connection's auth mode."""

from __future__ import annotations

from service.connections import repository
from service.connections.models import AuthMode, Connection
from service.connections.service import signing_keys, stored_capabilities
from service.db.session import Database
from service.ehr.circuit import CircuitBreakers, process_breakers
from service.ehr.client import FhirClient, TokenProvider
from service.ehr.errors import EhrDiscoveryError
from service.ehr.request_limits import process_request_limits, process_share
from service.ehr.url_policy import UrlPolicy
from service.errors import RuleViolation
from service.security.encryption import SecretBox
from service.settings import Settings
from service.smart.backend_services import (
    BackendServicesGrant,
    BackendServicesTokens,
    KeySource,
    shared_backend_tokens,
)
from service.smart.keys import ScheduledSigningKey


def stored_signing_keys(database: Database, box: SecretBox) -> KeySource:
    """Each connection's signing keys as stored when a token is requested, so a long-lived
    client (a pull job of hours) signs with the key a rotation has since made current."""

    async def keys(connection_id: str) -> tuple[ScheduledSigningKey, ...] | None:
        async with database.transaction(write=False) as session:
            connection = await repository.get_connection(session, connection_id)
            if connection is None or not connection.keys:
                return None
            return signing_keys(connection, box)

    return keys


def connection_tokens(
    database: Database, box: SecretBox, policy: UrlPolicy
) -> BackendServicesTokens:
    """The token cache of a process working for connections: tokens shared through the
    database, keys read anew at each token request."""
    return shared_backend_tokens(database, policy, stored_signing_keys(database, box))


def backend_services_grant(
    connection: Connection, box: SecretBox, scopes: tuple[str, ...] | None = None
) -> BackendServicesGrant:
    """The grant for `scopes` (default: the connection's scopes). Keys must be loaded."""
    if connection.auth_mode is not AuthMode.backend_services or connection.client_id is None:
        raise RuleViolation(
            "connection.auth_mode",
            f"connection {connection.name!r} does not use Backend Services",
        )
    capabilities = stored_capabilities(connection)
    if capabilities is None or capabilities.smart is None:
        raise EhrDiscoveryError(
            "the connection has no discovered token endpoint; run discovery",
            url=connection.base_url,
        )
    return BackendServicesGrant(
        connection_id=connection.id,
        token_endpoint=capabilities.smart.token_endpoint,
        client_id=connection.client_id,
        scopes=tuple(connection.scopes if scopes is None else scopes),
        signing_keys=signing_keys(connection, box),
    )


def fhir_client_for(
    connection: Connection,
    *,
    settings: Settings,
    box: SecretBox,
    tokens: BackendServicesTokens,
    policy: UrlPolicy | None = None,
    scopes: tuple[str, ...] | None = None,
    breakers: CircuitBreakers = process_breakers,
) -> FhirClient:
    """A client for system-to-system work. App Launch tokens belong to a user's session and
    are not used here. It shares the connection's circuit breaker and request limit with the
    process's other clients of that connection. Needs a running event loop."""
    provider: TokenProvider | None = None
    if connection.auth_mode is AuthMode.backend_services:
        provider = tokens.provider(backend_services_grant(connection, box, scopes))
    elif connection.auth_mode is AuthMode.app_launch:
        raise RuleViolation(
            "connection.auth_mode",
            f"connection {connection.name!r} uses App Launch: its tokens belong to a user",
        )
    breaker = breakers.for_connection(
        connection.id,
        failure_threshold=settings.ehr_breaker_failure_threshold,
        cooldown_seconds=settings.ehr_breaker_cooldown_seconds,
    )
    return FhirClient.from_settings(
        connection.base_url,
        settings,
        token_provider=provider,
        policy=policy,
        metrics_label=connection.id,
        breaker=breaker,
        limiter=process_request_limits.for_connection(connection.id, process_share(settings)),
    )
