"""Opening a case writes nothing to the EHR: an empty draft CarePlan waits until the plan holds
a record, or the case reaches a status that is no draft."""

from __future__ import annotations

import httpx

from service.db.session import Database
from service.links.repository import link_patient
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import create_patient, move_case, ok, open_case
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection


async def linked_patient(client: httpx.AsyncClient, database: Database, connection: str) -> str:
    patient = await create_patient(client)
    async with database.unit_of_work() as session:
        await link_patient(session, connection, patient["id"], "p1")
    return str(patient["id"])


async def test_an_empty_draft_is_pushed_only_once_it_holds_a_need(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await open_case(client, await linked_patient(client, database, connection))
    case = await move_case(client, case, "intake", "assessment")
    await dispatcher.run_until_idle()
    assert fake.writes() == []
    assert ok(await client.get("/api/push/status", params={"case_id": case["id"]})) == []

    ok(
        await client.post(
            f"/api/cases/{case['id']}/assessments",
            json={"kind": "initial", "needs": [{"domain": "food", "description": "Skips meals"}]},
        ),
        201,
    )
    await dispatcher.run_until_idle()
    assert [p["status"] for p in fake.of_type("CarePlan")] == ["draft"]
    assert len(fake.of_type("Condition")) == 1


async def test_an_empty_plan_is_pushed_when_the_case_leaves_draft(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await open_case(client, await linked_patient(client, database, connection))
    await dispatcher.run_until_idle()
    assert fake.writes() == []
    await move_case(client, case, "intake", "assessment", "planning", "active")
    await dispatcher.run_until_idle()
    assert [p["status"] for p in fake.of_type("CarePlan")] == ["active"]
