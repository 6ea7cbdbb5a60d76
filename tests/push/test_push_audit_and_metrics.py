"""A delivered push leaves an Export AuditEvent (which resources went to which connection, for
which patient); `/metrics` shows the outbox depth and push lag per connection until then."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


def gauge(text: str, name: str, connection: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("connection") == connection:
                return sample.value
    return None


async def test_a_delivered_push_is_audited_and_the_outbox_is_measured(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities(transaction=True))
    case = await case_of_linked_patient(client, database, connection, "p1")

    waiting = (await client.get("/metrics")).text
    depth = gauge(waiting, "casebridge_push_outbox_depth", connection)
    assert depth is not None
    assert depth >= 1
    lag = gauge(waiting, "casebridge_push_lag_seconds", connection)
    assert lag is not None
    assert lag >= 0

    await dispatcher.run_until_idle()
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "synced", status

    pushed = (await client.get("/metrics")).text
    assert gauge(pushed, "casebridge_push_outbox_depth", connection) is None
    trail = ok(await client.get("/api/admin/audit-events", params={"agent": "system:push"}))
    [event] = trail["items"]
    assert event["type"]["code"] == "110106"  # DICOM Export
    assert event["agent"][1]["who"]["identifier"]["value"] == f"connection:{connection}"
    sent = {e["what"]["reference"] for e in event["entity"]}
    assert f"Patient/{case['patient_id']}" in sent
    plans = {ref for ref in sent if ref.startswith(f"CarePlan/{case['id']}/_history/")}
    assert len(plans) == 1
    assert any(ref.startswith("Goal/") for ref in sent)
    by_patient = ok(
        await client.get("/api/admin/audit-events", params={"patient": case["patient_id"]})
    )["items"]
    assert event["id"] in {e["id"] for e in by_patient}
