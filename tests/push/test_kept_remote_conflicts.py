"""An EHR edit that a push merged in but the case could not take (here: a Condition, which
changes through the case only) stays in what was pushed. A later local change to the same
element must not rebase over it: the push parks a conflict instead, as a 412 would."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from service.db.session import Database
from service.links.models import ResourceLink
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


async def change_need(client: httpx.AsyncClient, case_id: str, **change: Any) -> dict[str, Any]:
    [need] = ok(await client.get(f"/api/cases/{case_id}/needs"))["items"]
    changed: dict[str, Any] = ok(
        await client.patch(
            f"/api/cases/{case_id}/needs/{need['id']}",
            json=change,
            headers={"If-Match": f'W/"{need["version"]}"'},
        )
    )
    return changed


async def test_a_local_change_over_an_ehr_edit_kept_remote_is_parked_not_written(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()
    [condition] = fake.of_type("Condition")
    ehr_code = {"text": "Needs help bathing (EHR wording)"}
    fake._save(condition | {"code": ehr_code}, int(condition["meta"]["versionId"]) + 1)

    # A local change elsewhere in the Condition meets the EHR's edit (412), merges it in, and
    # the case cannot take it: it stays on the EHR.
    await change_need(client, case["id"], severity="severe")
    await dispatcher.run_until_idle()
    [condition] = fake.of_type("Condition")
    assert condition["code"] == ehr_code
    assert condition["severity"]["coding"][0]["code"] == "24484000"  # severe: ours
    async with database.transaction(write=False) as session:
        link = await session.scalar(
            select(ResourceLink).where(ResourceLink.resource_type == "Condition")
        )
    assert link is not None
    assert link.remote_edits == ["code"]
    version_before = condition["meta"]["versionId"]

    # Now the case changes that very element.
    await change_need(client, case["id"], description="Needs help bathing and dressing")
    await dispatcher.run_until_idle()

    [condition] = fake.of_type("Condition")
    assert condition["code"] == ehr_code  # not overwritten
    assert condition["meta"]["versionId"] == version_before
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "conflict"
    [conflict] = ok(await client.get("/api/push/conflicts", params={"case_id": case["id"]}))
    assert conflict["resource_type"] == "Condition"
    assert conflict["elements"] == ["code"]
    assert conflict["remote"]["code"] == ehr_code
    assert conflict["local"]["code"]["text"] == "Needs help bathing and dressing"
    assert conflict["base"]["code"]["text"] == "Needs help bathing"
    assert conflict["local"]["severity"] == condition["severity"]

    # Keeping the case's wording writes it, and the element is no longer an EHR edit.
    ok(
        await client.post(
            f"/api/push/conflicts/{conflict['id']}/resolve", json={"resolution": "keep-local"}
        )
    )
    [condition] = fake.of_type("Condition")
    assert condition["code"]["text"] == "Needs help bathing and dressing"
    await dispatcher.run_until_idle()
    assert ok(await client.get("/api/push/conflicts")) == []
    async with database.transaction(write=False) as session:
        link = await session.scalar(
            select(ResourceLink).where(ResourceLink.resource_type == "Condition")
        )
    assert link is not None
    assert link.remote_edits is None
