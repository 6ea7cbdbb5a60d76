"""Connection registry rules: discovery before storage, one active key, rotation with a grace
period, and optimistic concurrency on every change."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
from service.pull.scope import PullScope, effective_scope
from service.security.encryption import SecretBox
from service.settings import Settings
from service.smart.keys import (
    ScheduledSigningKey,
    SigningAlgorithm,
    SigningKey,
    generate_key_pair,
    key_signing_at,
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


async def load_connection(
    session: AsyncSession, connection_id: str, *, probes: bool = False
) -> Connection:
    connection = await repository.get_connection(session, connection_id, probes=probes)
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
        pull_scope=_stored_scope(data.pull_scope),
        search_overrides={t: list(p) for t, p in data.search_overrides.items()},
        keys=[_new_key(data.signing_alg, box)],
        search_probes=[],
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
    if "pull_scope" in data.model_fields_set:
        connection.pull_scope = _stored_scope(data.pull_scope)
    if data.search_overrides is not None:
        connection.search_overrides = {t: list(p) for t, p in data.search_overrides.items()}
    if data.base_url is not None:
        new_base = normalise_base_url(data.base_url)
        if new_base != connection.base_url:
            # Another server: what the old one answered to probes says nothing about it.
            connection.search_probes.clear()
        connection.base_url = new_base
    if capabilities is not None:
        store_capabilities(connection, capabilities)
    await session.flush()
    return connection


def _stored_scope(scope: PullScope | None) -> dict[str, Any] | None:
    return None if scope is None else scope.model_dump(mode="json")


def connection_pull_scope(connection: Connection, settings: Settings) -> PullScope:
    """What a pull of the connection reads, per patient and by Bulk Data alike."""
    return effective_scope(connection.pull_scope, settings.pull_observation_categories)


def probed_searches(connection: Connection) -> dict[str, str | None]:
    """What probes found (service/pull/searches.py); `search_probes` must be loaded."""
    return {probe.resource_type: probe.patient_param for probe in connection.search_probes}


def store_capabilities(connection: Connection, capabilities: Capabilities) -> None:
    connection.capabilities = capabilities.model_dump(mode="json")
    connection.discovered_at = utcnow()


async def delete_connection(
    session: AsyncSession, connection: Connection, expected_version: int | None
) -> None:
    check_version(connection.version, expected_version)
    await session.delete(connection)
    await session.flush()


def _published(connection: Connection, now: dt.datetime) -> list[ConnectionKey]:
    return [k for k in connection.keys if k.retire_after is None or k.retire_after > now]


def _signs_by(key: ConnectionKey, now: dt.datetime) -> bool:
    return key.signs_from is None or key.signs_from <= now


def active_key(connection: Connection, now: dt.datetime | None = None) -> ConnectionKey:
    """The key that signs at `now`: the newest published key whose signing time has come
    (see `service.smart.keys` on rotation)."""
    moment = now or utcnow()
    due = [k for k in _published(connection, moment) if _signs_by(k, moment)]
    if not due:
        raise RuleViolation("connection.key.active", f"connection {connection.id} has no key")
    return max(due, key=lambda k: k.created_at)


def pending_key(connection: Connection, now: dt.datetime | None = None) -> ConnectionKey | None:
    """A key rotated in that is published but does not sign yet."""
    moment = now or utcnow()
    return next((k for k in connection.keys if not _signs_by(k, moment)), None)


async def rotate_key(
    session: AsyncSession,
    connection: Connection,
    alg: SigningAlgorithm | None,
    box: SecretBox,
    expected_version: int | None,
    overlap: dt.timedelta,
    now: dt.datetime | None = None,
) -> Connection:
    """Publish a new key now; it signs after `overlap` (or on `activate_key`), while the current
    key signs until then and stays published for an assertion's lifetime after."""
    check_version(connection.version, expected_version)
    moment = now or utcnow()
    pending = pending_key(connection, moment)
    if pending is not None:
        raise RuleViolation(
            "connection.key.rotation-pending",
            f"key {pending.kid} is published and signs from {pending.signs_from:%Y-%m-%dT%H:%M}Z;"
            " activate it (POST .../keys/activate) or wait before rotating again",
        )
    current = active_key(connection, moment)
    signs_from = moment + overlap
    current.retire_after = retirement_time(signs_from)
    new_alg: SigningAlgorithm = alg or ("ES384" if connection.signing_alg == "ES384" else "RS384")
    connection.signing_alg = new_alg
    new_key = _new_key(new_alg, box)
    new_key.signs_from = signs_from
    connection.keys.append(new_key)
    touch(connection)
    await session.flush()
    return connection


async def activate_key(
    session: AsyncSession,
    connection: Connection,
    expected_version: int | None,
    now: dt.datetime | None = None,
) -> Connection:
    """Let the pending key sign now (the EHR has its new JWKS); the key it replaces stays
    published for an assertion's lifetime plus clock skew."""
    check_version(connection.version, expected_version)
    moment = now or utcnow()
    pending = pending_key(connection, moment)
    if pending is None:
        raise RuleViolation(
            "connection.key.none-pending", "no rotated key waits to sign: rotate first"
        )
    for key in _published(connection, moment):
        if key is not pending and key.retire_after is not None:
            key.retire_after = min(key.retire_after, retirement_time(moment))
    pending.signs_from = moment
    touch(connection)
    await session.flush()
    return connection


def signing_keys(connection: Connection, box: SecretBox) -> tuple[ScheduledSigningKey, ...]:
    """Every published key that signs now or will, each with the moment it starts: a client
    built now picks the right one at each token request, across a rotation's switch."""
    moment = utcnow()
    keys = [active_key(connection, moment)]  # creation order, as `key_signing_at` wants
    pending = pending_key(connection, moment)
    if pending is not None:
        keys.append(pending)
    return tuple(
        ScheduledSigningKey(
            k.signs_from,
            load_signing_key(
                "ES384" if k.alg == "ES384" else "RS384", k.kid, k.encrypted_private_pem, box
            ),
        )
        for k in keys
    )


def signing_key(connection: Connection, box: SecretBox) -> SigningKey:
    return key_signing_at(signing_keys(connection, box), utcnow())


def stored_capabilities(connection: Connection) -> Capabilities | None:
    if connection.capabilities is None:
        return None
    return Capabilities.model_validate(connection.capabilities)
