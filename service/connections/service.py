"""Connection registry rules: discovery before storage, one active key, rotation with a grace
period, and optimistic concurrency on every change."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from service.api.concurrency import check_version
from service.connections import repository
from service.connections.models import AuthMode, Connection, ConnectionKey
from service.connections.schemas import ConnectionCreate, ConnectionUpdate
from service.db.base import touch, utcnow
from service.ehr.client import FhirClient
from service.ehr.discovery import Capabilities, discover
from service.ehr.errors import EhrDiscoveryError
from service.ehr.url_policy import UrlPolicy
from service.errors import NotFound, RuleViolation
from service.security.encryption import SecretBox
from service.settings import Settings
from service.smart.keys import (
    SigningAlgorithm,
    SigningKey,
    generate_key_pair,
    load_signing_key,
    retirement_time,
)


def normalise_base_url(base_url: str) -> str:
    # One spelling per EHR, so an App Launch `iss` matches by plain equality.
    return base_url.rstrip("/")


async def discover_capabilities(
    base_url: str, auth_mode: AuthMode, settings: Settings, policy: UrlPolicy
) -> Capabilities:
    """Run discovery against the EHR; the SSRF policy guards the base and every endpoint."""
    await policy.check(base_url)
    async with FhirClient.from_settings(base_url, settings, policy=policy) as client:
        capabilities = await discover(client, policy, require_oauth=auth_mode is not AuthMode.none)
    smart = capabilities.smart
    if auth_mode is AuthMode.app_launch and (smart is None or not smart.authorization_endpoint):
        raise EhrDiscoveryError(
            "App Launch needs an authorization_endpoint and the EHR publishes none", url=base_url
        )
    return capabilities


async def load_connection(session: AsyncSession, connection_id: str) -> Connection:
    connection = await repository.get_connection(session, connection_id)
    if connection is None:
        raise NotFound(f"no connection {connection_id}")
    return connection


async def _check_name_free(session: AsyncSession, name: str, except_id: str | None) -> None:
    if await repository.name_taken(session, name, except_id):
        raise RuleViolation("connection.name.unique", f"a connection named {name!r} exists")


def _new_key(alg: SigningAlgorithm, box: SecretBox) -> ConnectionKey:
    pair = generate_key_pair(alg, box)
    return ConnectionKey(
        alg=pair.alg,
        kid=pair.kid,
        public_jwk=pair.public_jwk,
        encrypted_private_pem=pair.encrypted_private_pem,
        created_at=utcnow(),
    )


async def create_connection(
    session: AsyncSession, data: ConnectionCreate, capabilities: Capabilities, box: SecretBox
) -> Connection:
    await _check_name_free(session, data.name, None)
    now = utcnow()
    connection = Connection(
        name=data.name,
        base_url=normalise_base_url(data.base_url),
        auth_mode=data.auth_mode,
        client_id=data.client_id,
        scopes=list(data.scopes),
        signing_alg=data.signing_alg,
        capabilities=capabilities.model_dump(mode="json"),
        discovered_at=now,
        document_fallback=data.document_fallback,
        keys=[_new_key(data.signing_alg, box)],
    )
    session.add(connection)
    await session.flush()
    return connection


async def update_connection(
    session: AsyncSession,
    connection: Connection,
    data: ConnectionUpdate,
    expected_version: int | None,
    capabilities: Capabilities | None,
) -> Connection:
    """`capabilities` is the result of re-discovery when `base_url` changes."""
    check_version(connection.version, expected_version)
    if data.name is not None and data.name != connection.name:
        await _check_name_free(session, data.name, connection.id)
        connection.name = data.name
    if data.client_id is not None:
        connection.client_id = data.client_id
    if data.scopes is not None:
        connection.scopes = list(data.scopes)
    if "document_fallback" in data.model_fields_set:
        connection.document_fallback = data.document_fallback
    if data.base_url is not None:
        connection.base_url = normalise_base_url(data.base_url)
    if capabilities is not None:
        store_capabilities(connection, capabilities)
    await session.flush()
    return connection


def store_capabilities(connection: Connection, capabilities: Capabilities) -> None:
    connection.capabilities = capabilities.model_dump(mode="json")
    connection.discovered_at = utcnow()


async def delete_connection(
    session: AsyncSession, connection: Connection, expected_version: int | None
) -> None:
    check_version(connection.version, expected_version)
    await session.delete(connection)
    await session.flush()


def active_key(connection: Connection) -> ConnectionKey:
    for key in reversed(connection.keys):
        if key.retire_after is None:
            return key
    raise RuleViolation("connection.key.active", f"connection {connection.id} has no active key")


async def rotate_key(
    session: AsyncSession,
    connection: Connection,
    alg: SigningAlgorithm | None,
    box: SecretBox,
    expected_version: int | None,
    now: dt.datetime | None = None,
) -> Connection:
    """A new key signs from now on; the old one stays published until its retirement time."""
    check_version(connection.version, expected_version)
    moment = now or utcnow()
    for key in connection.keys:
        if key.retire_after is None:
            key.retire_after = retirement_time(moment)
    new_alg: SigningAlgorithm = alg or ("ES384" if connection.signing_alg == "ES384" else "RS384")
    connection.signing_alg = new_alg
    connection.keys.append(_new_key(new_alg, box))
    touch(connection)
    await session.flush()
    return connection


def signing_key(connection: Connection, box: SecretBox) -> SigningKey:
    key = active_key(connection)
    alg: SigningAlgorithm = "ES384" if key.alg == "ES384" else "RS384"
    return load_signing_key(alg, key.kid, key.encrypted_private_pem, box)


def stored_capabilities(connection: Connection) -> Capabilities | None:
    if connection.capabilities is None:
        return None
    return Capabilities.model_validate(connection.capabilities)
