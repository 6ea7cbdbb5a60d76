"""Concurrent updates: one wins, the other gets 412, nothing is lost, and a failed commit is
never reported as a success. On PostgreSQL the requests really overlap on separate
connections; on SQLite the process-wide write lock serializes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.schemas import CaseUpdate
from service.cases.service import load_case, update_case
from service.db.session import Database
from tests.api.case_factory import ok, open_case, patch_case
from tests.conftest import BOOTSTRAP_KEY

ACTOR = Actor("apikey:test", Role.case_manager)


async def test_two_concurrent_updates_one_wins_and_the_loser_retries(
    client: httpx.AsyncClient,
) -> None:
    case = await open_case(client, manager="cm.first", priority="routine")
    first, second = await asyncio.gather(
        patch_case(client, case, manager="cm.second"),
        patch_case(client, case, priority="urgent"),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    loser_fields = {"priority": "urgent"} if second.status_code == 412 else {"manager": "cm.second"}

    current = await client.get(f"/api/cases/{case['id']}")
    retried = await client.patch(
        f"/api/cases/{case['id']}", json=loser_fields, headers={"If-Match": current.headers["ETag"]}
    )
    final = ok(retried)
    assert (final["manager"], final["priority"]) == ("cm.second", "urgent")
    assert final["version"] == case["version"] + 2
    history = ok(await client.get(f"/api/cases/{case['id']}/history"))
    updates = [e["changes"] for e in history if e["action"] == "updated"]
    assert sorted(updates, key=str) == sorted(
        [{"manager": ["cm.first", "cm.second"]}, {"priority": ["routine", "urgent"]}], key=str
    )


async def test_many_writers_retrying_lose_no_update(client: httpx.AsyncClient) -> None:
    case = await open_case(client)
    writers = 6

    async def write(n: int) -> int:
        """Read-modify-write until accepted; returns how many 412s it met."""
        conflicts = 0
        while True:
            current = await client.get(f"/api/cases/{case['id']}")
            response = await client.patch(
                f"/api/cases/{case['id']}",
                json={"title": f"writer {n}"},
                headers={"If-Match": current.headers["ETag"]},
            )
            if response.status_code == 200:
                return conflicts
            assert response.status_code == 412, response.text
            conflicts += 1

    await asyncio.gather(*(write(n) for n in range(writers)))
    final = ok(await client.get(f"/api/cases/{case['id']}"))
    assert final["version"] == case["version"] + writers
    history = ok(await client.get(f"/api/cases/{case['id']}/history"))
    titles = [e["changes"]["title"][1] for e in history if e["action"] == "updated"]
    assert sorted(titles) == sorted(f"writer {n}" for n in range(writers))
    assert final["title"] == titles[-1]


async def test_the_database_refuses_a_write_based_on_a_stale_read(
    client: httpx.AsyncClient, database: Database
) -> None:
    """Both transactions read version N and pass the If-Match check; the version in the
    UPDATE's WHERE clause stops the second one."""
    case = await open_case(client)
    async with database.units_of_work() as first, database.units_of_work() as second:
        mine = await load_case(first, case["id"])
        theirs = await load_case(second, case["id"])
        await update_case(first, ACTOR, mine, CaseUpdate(title="first"), case["version"])
        await first.commit()
        with pytest.raises(StaleDataError):
            await update_case(second, ACTOR, theirs, CaseUpdate(title="second"), case["version"])
        await second.rollback()
    stored = ok(await client.get(f"/api/cases/{case['id']}"))
    assert (stored["title"], stored["version"]) == ("first", case["version"] + 1)


@pytest.fixture
async def tolerant_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Returns the 500 response instead of re-raising the server-side exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"X-API-Key": BOOTSTRAP_KEY}
    ) as http:
        yield http


def _refuse_commit(_session: Session) -> None:
    raise RuntimeError("simulated commit failure")


async def test_a_failed_commit_is_an_error_not_a_success(
    tolerant_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    body: dict[str, Any] = {"given_name": "Ada", "family_name": "Lovelace"}
    event.listen(Session, "before_commit", _refuse_commit)
    try:
        response = await tolerant_client.post("/api/patients", json=body)
    finally:
        event.remove(Session, "before_commit", _refuse_commit)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert ok(await client.get("/api/patients"))["items"] == []
