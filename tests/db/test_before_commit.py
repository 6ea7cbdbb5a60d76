"""Work registered to run before each write commits sees the transaction's changed cases and
patients, and a failure there rolls the whole transaction back."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.changes import Changes, take_changes
from service.db.session import Database
from tests.api.case_factory import create_patient, ok, open_case, patch_case


async def test_hooks_see_the_changed_cases_and_patients(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    seen: list[Changes] = []

    async def record(session: AsyncSession) -> None:
        seen.append(take_changes(session))

    database: Database = app.state.database
    hooks = list(database.before_commit)
    database.before_commit[:] = [record]  # this hook alone: it takes the changes
    patient = await create_patient(client)
    case = await open_case(client, patient["id"])
    ok(await patch_case(client, case, title="Hip fracture"))
    ok(
        await client.patch(
            f"/api/patients/{patient['id']}",
            json={"given_name": "Augusta"},
            headers={"If-Match": f'W/"{patient["version"]}"'},
        )
    )
    await client.get(f"/api/cases/{case['id']}")  # reads run no hooks
    database.before_commit[:] = hooks

    actors = {"apikey:bootstrap"}
    assert seen == [
        Changes(set(), {patient["id"]}, actors),
        Changes({case["id"]}, set(), actors),
        Changes({case["id"]}, set(), actors),
        Changes(set(), {patient["id"]}, actors),
    ]


async def test_a_failing_hook_rolls_the_write_back(app: FastAPI, client: httpx.AsyncClient) -> None:
    case = await open_case(client)

    async def fail(_session: AsyncSession) -> None:
        raise RuntimeError("projection failed")

    database: Database = app.state.database
    database.before_commit.append(fail)
    try:
        with pytest.raises(RuntimeError, match="projection failed"):
            await patch_case(client, case, title="never stored")
    finally:
        database.before_commit.remove(fail)
    stored = ok(await client.get(f"/api/cases/{case['id']}"))
    assert (stored["title"], stored["version"]) == (case["title"], case["version"])
