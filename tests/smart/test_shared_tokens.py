"""EHR access tokens: a refresh margin proportional to the token's lifetime, and tokens shared
by processes through the database (encrypted, fetched by one process at a time). The token
endpoint is faked with respx; clocks and sleeps are injected."""

from __future__ import annotations

import asyncio
import base64
import secrets

import pytest
from sqlalchemy import select

from service.connections.models import AuthMode, Connection
from service.db.session import Database
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesGrant, BackendServicesTokens
from service.smart.models import SharedAccessToken
from service.smart.shared_tokens import SharedTokenStore, scope_key
from tests.ehr.fakes import public_dns_policy
from tests.smart.test_backend_services import (
    FakeClock,
    TokenEndpoint,
    make_grant,
)
from tests.smart.test_backend_services import endpoint as endpoint


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


@pytest.fixture
async def grant(database: Database) -> BackendServicesGrant:
    """A grant of a connection that exists (the shared row refers to it)."""
    async with database.transaction() as session:
        connection = Connection(
            name=f"ehr {secrets.token_hex(4)}",
            base_url="https://ehr.example.com/fhir",
            auth_mode=AuthMode.backend_services,
            client_id="casebridge-client",
            scopes=[],
            signing_alg="RS384",
            capabilities=None,
        )
        session.add(connection)
        await session.flush()
        connection_id = connection.id
    made, _ = make_grant()
    return BackendServicesGrant(
        connection_id=connection_id,
        token_endpoint=made.token_endpoint,
        client_id=made.client_id,
        scopes=made.scopes,
        signing_keys=made.signing_keys,
    )


def process(database: Database, box: SecretBox, clock: FakeClock) -> BackendServicesTokens:
    """What one process holds: its own cache, sharing tokens through `database`."""

    async def sleep(seconds: float) -> None:
        clock.now += seconds  # waiting for another process's fetch, on the fake clock
        await asyncio.sleep(0)

    store = SharedTokenStore(database, box, clock=clock, sleep=sleep)
    return BackendServicesTokens(policy=public_dns_policy(), clock=clock, shared=store)


async def test_fifty_requests_with_a_60_second_token_make_one_token_request(
    endpoint: TokenEndpoint, clock: FakeClock
) -> None:
    endpoint.expires_in = 60  # at the old fixed 60 s margin: a new token on every request
    tokens = BackendServicesTokens(policy=public_dns_policy(), clock=clock)
    grant, _ = make_grant()
    for _ in range(50):
        assert await tokens.access_token(grant) == "tok-1"
        clock.now += 0.5
    assert len(endpoint.forms) == 1
    clock.now = 1_000_000.0 + 47.9  # 12 s (a fifth of 60) before expiry: still reused
    assert await tokens.access_token(grant) == "tok-1"
    clock.now = 1_000_000.0 + 48.1
    assert await tokens.access_token(grant) == "tok-2"


async def test_the_margin_is_never_the_whole_lifetime(
    endpoint: TokenEndpoint, clock: FakeClock
) -> None:
    endpoint.expires_in = 1
    tokens = BackendServicesTokens(policy=public_dns_policy(), clock=clock)
    grant, _ = make_grant()
    assert await tokens.access_token(grant) == "tok-1"
    assert await tokens.access_token(grant) == "tok-1"
    assert len(endpoint.forms) == 1


async def test_two_processes_sharing_a_database_make_one_token_request(
    endpoint: TokenEndpoint,
    database: Database,
    box: SecretBox,
    clock: FakeClock,
    grant: BackendServicesGrant,
) -> None:
    first, second = process(database, box, clock), process(database, box, clock)
    results = await asyncio.gather(
        *(tokens.access_token(grant) for tokens in (first, second) for _ in range(5))
    )
    assert set(results) == {"tok-1"}
    assert len(endpoint.forms) == 1
    # A third process, started later, reads it too.
    assert await process(database, box, clock).access_token(grant) == "tok-1"
    assert len(endpoint.forms) == 1
    async with database.transaction(write=False) as session:
        [row] = (await session.scalars(select(SharedAccessToken))).all()
    assert row.encrypted_access_token is not None
    assert b"tok-1" not in row.encrypted_access_token  # stored encrypted
    assert box.decrypt_text(row.encrypted_access_token) == "tok-1"
    assert row.lifetime_seconds == 300


async def test_a_token_one_process_saw_rejected_is_replaced_once_for_all(
    endpoint: TokenEndpoint,
    database: Database,
    box: SecretBox,
    clock: FakeClock,
    grant: BackendServicesGrant,
) -> None:
    first, second = process(database, box, clock), process(database, box, clock)
    assert await first.access_token(grant) == "tok-1"
    assert await second.access_token(grant) == "tok-1"
    assert await first.reauthenticate(grant, "tok-1") == "tok-2"
    # The second process's own 401 on tok-1 finds tok-2 stored: no new request.
    assert await second.reauthenticate(grant, "tok-1") == "tok-2"
    assert len(endpoint.forms) == 2


async def test_a_fetch_lease_left_by_a_dead_process_is_taken_over_when_it_runs_out(
    endpoint: TokenEndpoint,
    database: Database,
    box: SecretBox,
    clock: FakeClock,
    grant: BackendServicesGrant,
) -> None:
    # A process took the fetch lease and died before storing a token.
    async with database.transaction() as session:
        session.add(
            SharedAccessToken(
                connection_id=grant.connection_id,
                scope_key=scope_key(grant.cache_key[1]),
                scope="",
                fetch_lease_token="dead",
                fetch_lease_expires_at=clock.now + 60,
            )
        )
    tokens = process(database, box, clock)
    started = clock.now
    assert await tokens.access_token(grant) == "tok-1"
    assert len(endpoint.forms) == 1
    assert clock.now - started >= 60  # it waited for the lease to run out, then fetched
