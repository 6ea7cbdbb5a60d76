"""A receiver's closing status met by a push's merge (412) closes the case's referral the way a
pull does (issue #16, the return path; `plans.receiver_status`): `completed` without an outcome
completes it as `not_reported` with one review item asking for the outcome; `revoked` revokes."""

from __future__ import annotations

from typing import Any

import httpx

from mappings.canonical import EXT_REFERRAL_OUTCOME
from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient
from tests.push.test_refused_ehr_edits import review_items


async def _closed_on_the_ehr_and_merged(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
    status: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the case, its referral) after the EHR set the referral's `status` and the planner's
    change of its priority met that edit on push."""
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()
    [remote] = fake.of_type("ServiceRequest")
    assert not any(x.get("url") == EXT_REFERRAL_OUTCOME for x in remote.get("extension") or ())
    fake._save(remote | {"status": status}, int(remote["meta"]["versionId"]) + 1)
    [referral] = ok(await client.get(f"/api/cases/{case['id']}/interventions"))["items"]
    ok(
        await client.patch(
            f"/api/cases/{case['id']}/interventions/{referral['id']}",
            json={"priority": "urgent"},
            headers={"If-Match": f'W/"{referral["version"]}"'},
        )
    )
    await dispatcher.run_until_idle()  # 412: merges the EHR's status
    shown = ok(await client.get(f"/api/cases/{case['id']}/interventions/{referral['id']}"))
    return case, shown


async def test_a_completion_merged_on_push_completes_the_referral_as_not_reported(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
) -> None:
    case, referral = await _closed_on_the_ehr_and_merged(
        client, database, fake, dispatcher, "completed"
    )

    assert (referral["status"], referral["referral_outcome"]) == ("completed", "not_reported")
    assert referral["priority"] == "urgent"  # the planner's change stands
    [item] = await review_items(client, case["id"])
    assert (item["source"], item["status"]) == ("merge", "open")
    assert (item["resource_type"], item["local_id"]) == ("ServiceRequest", referral["id"])
    assert item["elements"] == ["extension"]
    assert "record the outcome" in item["reason"]


async def test_a_revocation_merged_on_push_revokes_the_referral(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    case, referral = await _closed_on_the_ehr_and_merged(
        client, database, fake, dispatcher, "revoked"
    )

    assert referral["status"] == "revoked"
    assert referral["referral_outcome"] is None
    assert await review_items(client, case["id"]) == []
