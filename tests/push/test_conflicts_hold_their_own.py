"""An open conflict holds back its own resource only: a Goal (fake EHR) or a Condition (sekmet,
which cannot write Goals) in conflict does not stop an unrelated ServiceRequest edit, nor the
case's closure (the CarePlan's status), from reaching the EHR. Once the conflict is resolved,
its resource goes too, and the pair is synced."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok, patch_case
from tests.push.conftest import Ehr
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient, linked_case


async def change_record(
    client: httpx.AsyncClient, case_id: str, kind: str, **change: Any
) -> dict[str, Any]:
    """PATCH the case's only record of `kind` (goals, interventions, needs)."""
    listed = ok(await client.get(f"/api/cases/{case_id}/{kind}"))
    [record] = listed["items"] if isinstance(listed, dict) else listed
    changed: dict[str, Any] = ok(
        await client.patch(
            f"/api/cases/{case_id}/{kind}/{record['id']}",
            json=change,
            headers={"If-Match": f'W/"{record["version"]}"'},
        )
    )
    return changed


async def sync_status(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
    return dict(status)


async def close(client: httpx.AsyncClient, case_id: str) -> None:
    case = ok(await client.get(f"/api/cases/{case_id}"))
    ok(
        await patch_case(
            client, case, status="closed", closure_reason="goals_met", open_items="cancel"
        )
    )


async def test_a_goal_in_conflict_holds_back_only_the_goal(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()
    [goal] = fake.of_type("Goal")
    ehr_wording = {"text": "Bathe with a shower chair (EHR wording)"}
    fake._save(goal | {"description": ehr_wording}, int(goal["meta"]["versionId"]) + 1)
    await change_record(client, case["id"], "goals", description="Bathe without help")
    await dispatcher.run_until_idle()
    [conflict] = ok(await client.get("/api/push/conflicts", params={"case_id": case["id"]}))
    assert (conflict["resource_type"], conflict["elements"]) == ("Goal", ["description"])

    # While the Goal waits: an unrelated referral edit, then the case's closure.
    await change_record(client, case["id"], "interventions", priority="urgent")
    await close(client, case["id"])
    status = await sync_status(client, case["id"])
    assert status["status"] == "pending"  # the change wakes the pair
    await dispatcher.run_until_idle()

    [referral] = fake.of_type("ServiceRequest")
    assert referral["priority"] == "urgent"
    [plan] = fake.of_type("CarePlan")
    assert plan["status"] == "completed"  # the closure reached the EHR
    [goal] = fake.of_type("Goal")
    assert goal["description"] == ehr_wording  # held back, not overwritten
    status = await sync_status(client, case["id"])
    assert (status["status"], status["open_conflicts"]) == ("conflict", 1)
    assert status["synced_version"] is not None

    ok(
        await client.post(
            f"/api/push/conflicts/{conflict['id']}/resolve", json={"resolution": "keep-local"}
        )
    )
    await dispatcher.run_until_idle()
    [goal] = fake.of_type("Goal")
    assert goal["description"]["text"] == "Bathe without help"
    status = await sync_status(client, case["id"])
    assert (status["status"], status["open_conflicts"]) == ("synced", 0), status["last_error"]


@pytest.mark.integration
async def test_on_sekmet_a_condition_in_conflict_holds_back_only_the_condition(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    case, remote_patient = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    [condition] = [r async for r in ehr.fhir.search("Condition", [("subject", remote_patient)])]
    ehr_code = {"text": "Needs help bathing (EHR wording)"}
    await ehr.fhir.update(condition | {"code": ehr_code})
    await change_record(client, case["id"], "needs", description="Needs help bathing and dressing")
    await dispatcher.run_until_idle()
    [conflict] = ok(await client.get("/api/push/conflicts", params={"case_id": case["id"]}))
    assert (conflict["resource_type"], conflict["elements"]) == ("Condition", ["code"])

    changed = await change_record(client, case["id"], "interventions", priority="urgent")
    await close(client, case["id"])
    await dispatcher.run_until_idle()

    [referral] = await ehr.by_identifier("ServiceRequest", changed["id"])
    assert referral["priority"] == "urgent"
    [plan] = await ehr.by_identifier("CarePlan", case["id"])
    assert plan["status"] == "completed"
    [condition] = [r async for r in ehr.fhir.search("Condition", [("subject", remote_patient)])]
    assert condition["code"] == ehr_code
    status = await sync_status(client, case["id"])
    assert (status["status"], status["open_conflicts"]) == ("conflict", 1), status["last_error"]

    ok(
        await client.post(
            f"/api/push/conflicts/{conflict['id']}/resolve", json={"resolution": "keep-local"}
        )
    )
    await dispatcher.run_until_idle()
    [condition] = [r async for r in ehr.fhir.search("Condition", [("subject", remote_patient)])]
    assert condition["code"]["text"] == "Needs help bathing and dressing"
    status = await sync_status(client, case["id"])
    assert (status["status"], status["open_conflicts"]) == ("synced", 0), status["last_error"]
