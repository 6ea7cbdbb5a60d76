"""EHR edits the case cannot take reach a person, never only a log line (issue #16, problem 2).

- Against sekmet-fhir on loopback: the EHR edits a pushed CarePlan's title and adds a `note`;
  the next push meets a 412 and merges. The case takes the title (the `note` alone is refused:
  a case's notes change through /api) and the `note` becomes a review item; the EHR keeps it.
- A conflict resolved after its case closed: the resolution cannot reach the case, so it is a
  review item.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.db.session import Database
from service.links.models import ResourceLink
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok, patch_case
from tests.push.conftest import Ehr
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient, linked_case

NOTE = [{"text": "Discussed at the ward round: daughter helps with bathing."}]


async def review_items(client: httpx.AsyncClient, case_id: str) -> list[dict[str, Any]]:
    page = ok(await client.get("/api/review-items", params={"case_id": case_id}))
    return list(page["items"])


@pytest.mark.integration
async def test_an_ehr_edit_is_applied_where_it_can_be_and_the_rest_is_a_review_item(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    case, _ = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    [remote] = await ehr.by_identifier("CarePlan", case["id"])
    await ehr.fhir.update(remote | {"title": "Title from the EHR", "note": NOTE})

    # A local change elsewhere in the CarePlan: the push meets the EHR's edit (412) and merges.
    ok(await patch_case(client, case, manager="cm.smith"))
    await dispatcher.run_until_idle()

    shown = ok(await client.get(f"/api/cases/{case['id']}"))
    assert shown["title"] == "Title from the EHR"  # what the case can take, it took
    assert shown["manager"] == "cm.smith"
    [item] = await review_items(client, case["id"])
    assert (item["source"], item["status"]) == ("merge", "open")
    assert (item["resource_type"], item["local_id"]) == ("CarePlan", case["id"])
    assert item["remote_reference"] == f"CarePlan/{remote['id']}"
    assert item["elements"] == ["note"]
    assert item["ehr_value"] == {"note": NOTE}
    assert item["case_value"] == {}  # the case's CarePlan has no note
    assert "CarePlan.note" in item["reason"]
    assert (item["connection_id"], item["patient_id"]) == (ehr.connection_id, case["patient_id"])
    # The EHR keeps its note, and it is remembered as an EHR edit the case lacks.
    [plan] = await ehr.by_identifier("CarePlan", case["id"])
    assert (plan["title"], plan["note"]) == ("Title from the EHR", NOTE)
    async with database.transaction(write=False) as session:
        link = await session.scalar(
            select(ResourceLink).where(
                ResourceLink.connection_id == ehr.connection_id,
                ResourceLink.resource_type == "CarePlan",
                ResourceLink.local_id == case["id"],
            )
        )
    assert link is not None
    assert link.remote_edits == ["note"]

    # The next push meets the same edit again: still one item.
    case = ok(await client.get(f"/api/cases/{case['id']}"))
    ok(await patch_case(client, case, manager="cm.jones"))
    await dispatcher.run_until_idle()
    assert [i["id"] for i in await review_items(client, case["id"])] == [item["id"]]


async def test_a_resolution_after_the_case_closed_is_a_review_item(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()
    [referral] = fake.of_type("ServiceRequest")
    fake._save(referral | {"priority": "asap"}, int(referral["meta"]["versionId"]) + 1)
    [intervention] = ok(await client.get(f"/api/cases/{case['id']}/interventions"))["items"]
    ok(
        await client.patch(
            f"/api/cases/{case['id']}/interventions/{intervention['id']}",
            json={"priority": "urgent"},
            headers={"If-Match": f'W/"{intervention["version"]}"'},
        )
    )
    await dispatcher.run_until_idle()
    [conflict] = ok(await client.get("/api/push/conflicts"))
    assert conflict["elements"] == ["priority"]
    case = ok(await client.get(f"/api/cases/{case['id']}"))
    ok(
        await patch_case(
            client, case, status="closed", closure_reason="transferred", open_items="cancel"
        )
    )

    ok(
        await client.post(
            f"/api/push/conflicts/{conflict['id']}/resolve", json={"resolution": "take-remote"}
        )
    )

    [item] = await review_items(client, case["id"])
    assert (item["source"], item["status"]) == ("resolution", "open")
    assert (item["resource_type"], item["local_id"]) == ("ServiceRequest", intervention["id"])
    assert item["elements"] == ["priority"]
    assert item["ehr_value"] == {"priority": "asap"}
    assert item["case_value"] == {"priority": "urgent"}
    assert "closed" in item["reason"]
    shown = ok(await client.get(f"/api/cases/{case['id']}/interventions/{intervention['id']}"))
    assert shown["priority"] == "urgent"  # the closed case is unchanged


ACHIEVED = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "achieved"}
    ]
}


async def test_a_refused_edit_applied_later_by_a_person_reaches_the_case(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()
    [remote_goal] = fake.of_type("Goal")
    fake._save(
        remote_goal | {"achievementStatus": ACHIEVED}, int(remote_goal["meta"]["versionId"]) + 1
    )
    [goal] = ok(await client.get(f"/api/cases/{case['id']}/goals"))["items"]
    ok(
        await client.patch(
            f"/api/cases/{case['id']}/goals/{goal['id']}",
            json={"priority": "high"},
            headers={"If-Match": f'W/"{goal["version"]}"'},
        )
    )
    await dispatcher.run_until_idle()  # merges the EHR's "achieved": the case is not active

    [item] = await review_items(client, case["id"])
    assert (item["resource_type"], item["elements"]) == ("Goal", ["achievementStatus"])
    assert "goal can be achieved only while its case is active" in item["reason"]
    refused = await client.post(
        f"/api/review-items/{item['id']}/decision", json={"decision": "apply-ehr-value"}
    )
    assert refused.status_code == 422  # the rule still holds

    case = ok(await client.get(f"/api/cases/{case['id']}"))
    for status in ("intake", "assessment", "planning", "active"):
        case = ok(await patch_case(client, case, status=status))
    decided = ok(
        await client.post(
            f"/api/review-items/{item['id']}/decision", json={"decision": "apply-ehr-value"}
        )
    )

    assert decided["status"] == "resolved"
    goal = ok(await client.get(f"/api/cases/{case['id']}/goals/{goal['id']}"))
    assert goal["achievement_status"] == "achieved"
    async with database.transaction(write=False) as session:
        link = await session.scalar(
            select(ResourceLink).where(
                ResourceLink.resource_type == "Goal", ResourceLink.local_id == goal["id"]
            )
        )
    assert link is not None
    assert link.remote_edits is None  # the case has the EHR's value now
