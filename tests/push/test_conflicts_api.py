"""Resolving push conflicts through the API, against a fake EHR (respx): take-remote keeps the
EHR's copy and writes nothing, edit writes the person's version with If-Match, and a remote
copy that changed again answers 412 (problem+json) with the conflict refreshed."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok, patch_case
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


async def conflicted(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> tuple[dict[str, Any], dict[str, Any]]:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()
    [plan] = fake.of_type("CarePlan")
    fake._save(plan | {"title": "From the EHR"}, int(plan["meta"]["versionId"]) + 1)
    ok(await patch_case(client, case, title="From the case manager"))
    await dispatcher.run_until_idle()
    [conflict] = ok(await client.get("/api/push/conflicts"))
    assert conflict["elements"] == ["title"]
    return case, conflict


async def sync_status(client: httpx.AsyncClient, case_id: str) -> str:
    [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
    return str(status["status"])


async def test_take_remote_keeps_the_ehr_copy(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    case, conflict = await conflicted(client, database, fake, dispatcher)
    writes_before = len(fake.writes())

    resolved = ok(
        await client.post(
            f"/api/push/conflicts/{conflict['id']}/resolve", json={"resolution": "take-remote"}
        )
    )
    assert (resolved["status"], resolved["resolution"]) == ("resolved", "take-remote")
    assert await sync_status(client, case["id"]) == "pending"
    await dispatcher.run_until_idle()

    assert await sync_status(client, case["id"]) == "synced"
    assert fake.of_type("CarePlan")[0]["title"] == "From the EHR"  # not overwritten
    assert ok(await client.get("/api/push/conflicts")) == []
    # The case takes the EHR's title too.
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "From the EHR"
    # Taking it regenerates the plan's narrative (it names the title): that alone is written.
    [plan_write] = [w for w in fake.writes()[writes_before:] if "/CarePlan/" in w.url.path]
    sent = orjson.loads(plan_write.content)
    assert sent["title"] == "From the EHR"
    assert "From the EHR" in sent["text"]["div"]


async def test_edit_writes_the_agreed_version_with_if_match(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    case, conflict = await conflicted(client, database, fake, dispatcher)
    agreed = conflict["remote"] | {"title": "Agreed title"}

    ok(
        await client.post(
            f"/api/push/conflicts/{conflict['id']}/resolve",
            json={"resolution": "edit", "resource": agreed},
        )
    )

    put = fake.writes("PUT")[-1]
    assert put.headers["If-Match"] == f'W/"{conflict["remote_version_id"]}"'
    assert fake.of_type("CarePlan")[0]["title"] == "Agreed title"
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Agreed title"
    await dispatcher.run_until_idle()
    assert await sync_status(client, case["id"]) == "synced"


async def test_a_remote_copy_that_changed_again_refreshes_the_conflict(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    case, conflict = await conflicted(client, database, fake, dispatcher)
    [plan] = fake.of_type("CarePlan")
    fake._save(plan | {"title": "Changed again"}, int(plan["meta"]["versionId"]) + 1)

    response = await client.post(
        f"/api/push/conflicts/{conflict['id']}/resolve", json={"resolution": "keep-local"}
    )

    assert response.status_code == 412
    assert response.headers["Content-Type"] == "application/problem+json"
    refreshed = ok(await client.get(f"/api/push/conflicts/{conflict['id']}"))
    assert refreshed["status"] == "open"
    assert refreshed["remote"]["title"] == "Changed again"
    assert int(refreshed["remote_version_id"]) == int(conflict["remote_version_id"]) + 1
    assert await sync_status(client, case["id"]) == "conflict"


async def test_edit_needs_a_resource_and_unknown_conflicts_are_404(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.post("/api/push/conflicts/nope/resolve", json={"resolution": "edit"})
    assert missing.status_code == 422
    unknown = await client.post(
        "/api/push/conflicts/nope/resolve", json={"resolution": "keep-local"}
    )
    assert unknown.status_code == 404
    assert unknown.headers["Content-Type"] == "application/problem+json"


async def test_an_edit_keeps_the_type_and_the_patient(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    _, conflict = await conflicted(client, database, fake, dispatcher)
    url = f"/api/push/conflicts/{conflict['id']}/resolve"
    writes_before = len(fake.writes())
    other_type = conflict["remote"] | {"resourceType": "Goal"}
    other_patient = conflict["remote"] | {"subject": {"reference": "Patient/someone-else"}}
    for edit in (other_type, other_patient):
        refused = await client.post(url, json={"resolution": "edit", "resource": edit})
        assert refused.status_code == 422, refused.text
        assert refused.headers["Content-Type"] == "application/problem+json"
    assert len(fake.writes()) == writes_before
    assert ok(await client.get(f"/api/push/conflicts/{conflict['id']}"))["status"] == "open"
