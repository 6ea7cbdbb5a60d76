"""`Idempotency-Key` on `/fhir` POST (creates, transaction and batch Bundles), after
draft-ietf-httpapi-idempotency-key-header: a client that did not get an answer may send the
same request again with the same key and gets the first answer, never a second resource.

- The first request with a key **reserves** it in a row of its own, committed before the work
  starts (`idempotency_keys`, keyed by caller and key, with a SHA-256 of method, path and
  body). Its answer (status, Content-Type, Location, ETag, Last-Modified, body) is stored
  **in the work's own transaction** for creates and transactions, so the answer commits with
  the resource or not at all; a batch (not atomic anyway) stores it just after.
- A **replay** with the same method, path and body gets the stored answer; the same key with
  another request is refused (422). A replay that arrives while the first is still working
  waits for its answer (polling, up to `WAIT_SECONDS`; then 409, as the draft answers a key
  in use). What the answer disclosed (`Disclosure`: the interaction, and each entry audited
  on its own, such as a transaction's GET entries) is stored with it, so that a replay, which
  discloses it again, is audited as the first answer was.
- A request whose work **fails** (any error) deletes its reservation: errors are not
  remembered, and a retry runs afresh. A process that dies mid-work leaves its reservation
  until the lease (`LEASE_SECONDS`) runs out; the work it did not commit is gone with it, and
  the next request takes the key over. A holder that outlives its lease finds the key taken
  when it stores its answer, and its transaction is rolled back (409): one resource still.
- Answers are kept `fhir_idempotency_key_seconds`; expired keys are reused and pruned.

Why a committed reservation rather than a lock held for the whole request: waiting replays hold
no database connection and no lock, batches (whose entries each commit on their own) are
covered the same way, and on SQLite no write transaction has to stay open around the work.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.events import Disclosure
from service.db.base import utcnow
from service.db.session import Database, DatabaseDep
from service.errors import BadRequest, Conflict, UnprocessableEntity
from service.fhir_auth.principal import FhirPrincipalDep
from service.idempotency import repository
from service.idempotency.repository import KeyState, Reservation

LEASE_SECONDS = 120.0
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("content-type", "location", "etag", "last-modified")

logger = logging.getLogger(__name__)


class IdempotencyKeyInUse(Conflict):
    kind = "idempotency-key-in-use"
    title = "A request with this Idempotency-Key is still being processed"


@dataclass
class Idempotency:
    """What the route does about the request's key: serve `replay` if set, else do the work and
    pass its answer through `remember`."""

    database: Database
    principal: str
    key: str | None = None
    token: str | None = None  # set while this request holds the key
    replay: Response | None = None
    # What the replayed answer disclosed; None for answers stored before it was kept.
    replay_disclosed: Disclosure | None = None
    answered: bool = False

    async def remember(
        self,
        response: Response,
        disclosed: Disclosure | None,
        session: AsyncSession | None = None,
    ) -> Response:
        """Store `response` as the key's answer, with what it `disclosed`, and return it. Pass
        the work's `session` when there is one, so the answer commits with the work; without
        it the answer is stored in a transaction of its own."""
        if self.key is None or self.token is None:
            return response
        if session is not None:
            stored = await self._complete(session, response, disclosed)
        else:
            async with self.database.transaction() as own:
                stored = await self._complete(own, response, disclosed)
        if not stored:
            raise IdempotencyKeyInUse(
                "this request outlived its hold on the Idempotency-Key and another request "
                "took the key over; nothing of this one was kept",
                extra={"expression": ["Idempotency-Key"]},
            )
        self.answered = True
        return response

    async def _complete(
        self, session: AsyncSession, response: Response, disclosed: Disclosure | None
    ) -> bool:
        assert self.key is not None
        assert self.token is not None
        return await repository.complete(
            session,
            self.principal,
            self.key,
            token=self.token,
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k in KEPT_HEADERS},
            body=bytes(response.body),
            expires_at=utcnow() + _kept(self.database),
            audit=None if disclosed is None else disclosed.as_json(),
        )


def _kept(database: Database) -> dt.timedelta:
    return dt.timedelta(seconds=database.settings.fhir_idempotency_key_seconds)


def _key_of(header: str) -> str:
    """The key of an `Idempotency-Key` header: a Structured Field string (RFC 8941,
    `"8e03978e…"`); a bare token is taken as it is."""
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            extra={"expression": ["Idempotency-Key"]},
        )
    return key


def _fingerprint(request: Request, body: bytes) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    digest = hashlib.sha256(f"{request.method} {target}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _stored_answer(state: KeyState) -> tuple[Response, Disclosure | None]:
    """The key's answer to replay, and what it disclosed."""
    assert state.status_code is not None
    answer = Response(state.body or b"", state.status_code, headers=state.headers or {})
    disclosed = None if state.audit is None else Disclosure.from_json(state.audit)
    return answer, disclosed


async def _claim(
    database: Database, principal: str, key: str, fingerprint: str
) -> str | tuple[Response, Disclosure | None]:
    """The token of this request's reservation of the key, or the stored answer to replay
    (with what it disclosed).
    Waits while another request holds the key (see the module doc)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while True:
        now = utcnow()
        async with database.transaction(write=False) as session:
            state = await repository.key_state(session, principal, key)
        free = state is None or state.expires_at <= now
        if state is not None and not free:
            answered = state.status_code is not None
            free = not answered and state.lease_until <= now  # its holder died: take it over
            if not free and state.fingerprint != fingerprint:
                raise UnprocessableEntity(
                    "this Idempotency-Key was used with another request (method, URL or body); "
                    "use a new key for a new request",
                    extra={"expression": ["Idempotency-Key"]},
                )
            if answered:
                return _stored_answer(state)
        if free:
            claim = Reservation(
                fingerprint=fingerprint,
                token=secrets.token_hex(16),
                lease_until=now + dt.timedelta(seconds=LEASE_SECONDS),
                expires_at=now + _kept(database),
            )
            async with database.transaction() as session:
                if state is None:
                    await repository.prune_expired(session, now)
                    won = await repository.reserve(session, principal, key, claim)
                else:
                    won = await repository.take_over(
                        session, principal, key, claim, previous_token=state.token, now=now
                    )
            if won:
                return claim.token
            continue  # another request got there first: look again
        if loop.time() >= deadline:
            raise IdempotencyKeyInUse(
                "another request with this Idempotency-Key is still being processed; "
                "retry later for its answer",
                extra={"expression": ["Idempotency-Key"]},
            )
        await asyncio.sleep(POLL_SECONDS)


async def idempotency(
    request: Request, database: DatabaseDep, principal: FhirPrincipalDep
) -> AsyncIterator[Idempotency]:
    """Declare it before the route's session, so that the key is reserved before the work's
    transaction opens and released after it has ended."""
    header = request.headers.get("idempotency-key")
    if header is None or request.method != "POST":
        yield Idempotency(database, principal.subject)
        return
    key = _key_of(header)
    claimed = await _claim(
        database, principal.subject, key, _fingerprint(request, await request.body())
    )
    if not isinstance(claimed, str):
        answer, disclosed = claimed
        yield Idempotency(
            database, principal.subject, key, replay=answer, replay_disclosed=disclosed
        )
        return
    held = Idempotency(database, principal.subject, key, token=claimed)
    try:
        yield held
    finally:
        # Always, whether or not an answer was stored: one stored in the work's transaction is
        # rolled back with it if that commit fails, and the release deletes only a reservation
        # still unanswered (a committed answer stays).
        await _release(database, principal.subject, key, claimed)


async def _release(database: Database, principal: str, key: str, token: str) -> None:
    try:
        async with database.transaction() as session:
            await repository.release(session, principal, key, token=token)
    except Exception:  # the lease frees the key anyway; the request's own error matters more
        logger.warning("could not release an Idempotency-Key reservation", exc_info=True)


# scope="function": the answer is stored, or the key released, before the response is sent.
IdempotencyDep = Annotated[Idempotency, Depends(idempotency, scope="function")]
