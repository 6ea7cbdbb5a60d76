"""Notes are lists, not one value, against sekmet on loopback: the receiver adds a note to the
referral on the EHR while the planner sets the case's outcome note. Both notes end up on the EHR
with no conflict, the case keeps the planner's outcome note and holds the receiver's note too
(readable at /fhir/ServiceRequest), and a later change of the outcome note keeps it."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from service.db.session import Database
from service.fhir_store.models import StoredResource
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok
from tests.push.conftest import Ehr
from tests.push.linked_cases import linked_case
from tests.push.test_conflicts_hold_their_own import change_record, sync_status

pytestmark = pytest.mark.integration

RECEIVER_NOTE = {
    "text": "First home visit booked for Monday.",
    "time": "2026-12-01T10:00:00Z",
    "authorString": "Sunrise Home Health intake",
}


def texts(resource: dict[str, Any]) -> list[str]:
    return [str(note["text"]) for note in resource.get("note") or []]


async def test_the_receivers_note_and_the_outcome_note_both_survive(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    case, _ = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    [referral] = ok(await client.get(f"/api/cases/{case['id']}/interventions"))["items"]
    [remote] = await ehr.by_identifier("ServiceRequest", referral["id"])
    await ehr.fhir.update(remote | {"note": [RECEIVER_NOTE]})

    await change_record(client, case["id"], "interventions", outcome_note="Visits started.")
    await dispatcher.run_until_idle()

    assert ok(await client.get("/api/push/conflicts")) == []
    status = await sync_status(client, case["id"])
    assert (status["status"], status["open_conflicts"]) == ("synced", 0), status["last_error"]
    [remote] = await ehr.by_identifier("ServiceRequest", referral["id"])
    assert sorted(texts(remote)) == sorted(["Visits started.", RECEIVER_NOTE["text"]])
    assert RECEIVER_NOTE in remote["note"]  # as the receiver wrote it
    # The case keeps its outcome note, and holds the receiver's note beside it.
    [referral] = ok(await client.get(f"/api/cases/{case['id']}/interventions"))["items"]
    assert referral["outcome_note"] == "Visits started."
    async with database.transaction(write=False) as session:
        stored = await session.get(StoredResource, ("ServiceRequest", referral["id"]))
    assert stored is not None
    assert RECEIVER_NOTE in orjson.loads(stored.content)["note"]

    # A later change of the outcome note replaces the case's note only.
    await change_record(client, case["id"], "interventions", outcome_note="Discharged from HH.")
    await dispatcher.run_until_idle()
    [remote] = await ehr.by_identifier("ServiceRequest", referral["id"])
    assert sorted(texts(remote)) == sorted(["Discharged from HH.", RECEIVER_NOTE["text"]])
    assert ok(await client.get("/api/push/conflicts")) == []
    status = await sync_status(client, case["id"])
    assert status["status"] == "synced", status["last_error"]
