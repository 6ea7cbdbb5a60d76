"""The dispatcher and the write strategies against a fake EHR (respx): what goes on the wire
for an EHR with transactions, for one without conditional create, for a read-only target, and
how failures are retried, dead-lettered and replayed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import orjson
import respx
from fastapi import FastAPI
from sqlalchemy import select, update

from mappings.canonical import IDENTIFIER_SYSTEM
from service.db.base import utcnow
from service.db.session import Database
from service.fhir_auth.principal import FhirPrincipal, authenticate_fhir
from service.fhir_auth.scopes import parse_scopes
from service.links.models import ResourceLink
from service.push.dispatcher import PushDispatcher
from service.push.models import PushOutboxEntry, PushSync
from tests.api.case_factory import ok, open_case, patch_case
from tests.push.fake_ehr import BASE, FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


async def status_of(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
    return dict(status)


def body(request: httpx.Request) -> Any:
    return orjson.loads(request.content)


async def test_a_transaction_bundle_of_conditional_creates_then_if_match_updates(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities(transaction=True))
    case = await case_of_linked_patient(client, database, connection, "p1")

    await dispatcher.run_until_idle()

    [transaction] = fake.writes()
    assert str(transaction.url) == BASE
    bundle = body(transaction)
    assert bundle["type"] == "transaction"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Condition", "Goal", "ServiceRequest", "CarePlan", "Provenance"]
    by_type = {e["resource"]["resourceType"]: e for e in bundle["entry"]}
    plan = by_type["CarePlan"]
    assert plan["request"] == {
        "method": "POST",
        "url": "CarePlan",
        "ifNoneExist": f"identifier={IDENTIFIER_SYSTEM['CarePlan']}|{case['id']}",
    }
    assert plan["fullUrl"].startswith("urn:uuid:")
    assert "id" not in plan["resource"]
    assert plan["resource"]["subject"]["reference"] == "Patient/p1"
    assert plan["resource"]["addresses"] == [{"reference": by_type["Condition"]["fullUrl"]}]
    assert plan["resource"]["goal"] == [{"reference": by_type["Goal"]["fullUrl"]}]
    agents = by_type["Provenance"]["resource"]["agent"]
    assert [a["type"]["coding"][0]["code"] for a in agents] == ["author", "transmitter"]
    assert agents[0]["who"]["display"] == "cm.jones"
    [stored_plan] = fake.of_type("CarePlan")
    assert stored_plan["goal"] == [{"reference": f"Goal/{fake.of_type('Goal')[0]['id']}"}]
    assert (await status_of(client, case["id"]))["status"] == "synced"

    ok(await patch_case(client, case, title="Home with support"))
    await dispatcher.run_until_idle()

    update_bundle = body(fake.writes()[-1])
    [plan_update] = [
        e for e in update_bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"
    ]
    assert plan_update["request"] == {
        "method": "PUT",
        "url": f"CarePlan/{stored_plan['id']}",
        "ifMatch": 'W/"1"',
    }
    assert plan_update["resource"]["title"] == "Home with support"
    # The merge base names the EHR's ids, never the first Bundle's urn:uuids.
    condition_id = fake.of_type("Condition")[0]["id"]
    assert plan_update["resource"]["addresses"] == [{"reference": f"Condition/{condition_id}"}]
    # Only what changed is sent again (the CarePlan), with its Provenance.
    assert [e["resource"]["resourceType"] for e in update_bundle["entry"]] == [
        "CarePlan",
        "Provenance",
    ]
    assert fake.of_type("CarePlan")[0]["meta"]["versionId"] == "2"


async def test_without_conditional_create_a_search_by_identifier_prevents_a_duplicate(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities(conditional_create=False))
    case = await case_of_linked_patient(client, database, connection, "p1")
    # The EHR has the CarePlan already: an earlier push wrote it, then its worker died before
    # recording the link.
    fake._save(
        {
            "resourceType": "CarePlan",
            "id": "existing",
            "identifier": [{"system": IDENTIFIER_SYSTEM["CarePlan"], "value": case["id"]}],
            "status": "draft",
            "intent": "plan",
            "subject": {"reference": "Patient/p1"},
        },
        1,
    )

    await dispatcher.run_until_idle()

    assert len(fake.of_type("CarePlan")) == 1
    [plan_write] = [w for w in fake.writes() if "CarePlan" in w.url.path]
    assert plan_write.method == "PUT"
    assert plan_write.url.path == "/fhir/CarePlan/existing"
    assert plan_write.headers["If-Match"] == 'W/"1"'
    assert all("If-None-Exist" not in w.headers for w in fake.writes())
    creates = [w.url.path for w in fake.writes("POST")]
    assert creates == ["/fhir/Condition", "/fhir/Goal", "/fhir/ServiceRequest"]
    # The Provenance is created by update, at an id derived from what the push wrote.
    [provenance] = fake.of_type("Provenance")
    assert fake.writes("PUT")[-1].url.path == f"/fhir/Provenance/{provenance['id']}"
    # One request per resource, in order; the ServiceRequest named the CarePlan, which did
    # not exist yet on the EHR, so it is sent again once it does.
    [referral] = fake.of_type("ServiceRequest")
    assert referral["basedOn"] == [{"reference": "CarePlan/existing", "type": "CarePlan"}]
    assert (await status_of(client, case["id"]))["status"] == "synced"


async def test_a_read_only_type_is_reported_not_retried(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    caps = capabilities(read_only=["CarePlan", "Goal", "ServiceRequest"])
    connection = await fake_connection(database, caps)
    case = await case_of_linked_patient(client, database, connection, "p1")

    await dispatcher.run_until_idle()

    status = await status_of(client, case["id"])
    assert status["status"] == "unsupported"
    assert status["attempts"] == 0
    # The fake lists no Organization either: who acts (an API key) keeps its display only.
    assert set(status["unsupported"]) == {"CarePlan", "Goal", "ServiceRequest", "Organization"}
    assert "not supported by this EHR" in status["unsupported"]["CarePlan"]
    assert "'create' interaction for CarePlan" in status["unsupported"]["CarePlan"]
    [provenance] = fake.of_type("Provenance")
    assert [w.url.path for w in fake.writes()] == [
        "/fhir/Condition",
        f"/fhir/Provenance/{provenance['id']}",
    ]


async def test_failures_back_off_honour_retry_after_and_dead_letter_then_replay(
    client: httpx.AsyncClient, database: Database, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    with respx.mock(assert_all_called=True) as router:
        router.post(f"{BASE}/Condition").respond(429, headers={"Retry-After": "3600"})
        before = utcnow()
        await dispatcher.run_once()
    status = await status_of(client, case["id"])
    assert status["status"] == "failed"
    assert "EhrRateLimited" in status["last_error"]
    retry_at = dt.datetime.fromisoformat(status["next_attempt_at"])
    # Retry-After is honoured up to the longest delay of our own (0.05 s in these settings),
    # never less than it: a retry earlier than our backoff's ceiling would not be honouring it.
    ceiling = dt.timedelta(seconds=database.settings.push_retry_max_seconds)
    assert before + ceiling <= retry_at < before + dt.timedelta(seconds=3600)
    assert status["attempts"] == 0  # throttling is no attempt: it never dead-letters alone

    max_attempts = database.settings.push_max_attempts
    with respx.mock(assert_all_called=True) as router:
        rejected = router.post(f"{BASE}/Condition").respond(
            422, json={"resourceType": "OperationOutcome", "issue": []}
        )
        for _ in range(max_attempts):
            await _make_due(database)
            assert await dispatcher.run_once() == 1
        await _make_due(database)
        assert await dispatcher.run_once() == 0  # dead: never claimed again
    assert rejected.call_count == max_attempts
    status = await status_of(client, case["id"])
    assert status["status"] == "dead"
    assert status["attempts"] == max_attempts
    assert "422" in status["last_error"]

    replayed = ok(
        await client.post(f"/api/push/status/{case['id']}/{connection}/replay"),
    )
    assert (replayed["status"], replayed["attempts"]) == ("pending", 0)
    fake = FakeEhr()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        await dispatcher.run_until_idle()
    assert (await status_of(client, case["id"]))["status"] == "synced"
    assert len(fake.of_type("CarePlan")) == 1


async def _make_due(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(update(PushSync).values(next_attempt_at=utcnow()))


async def test_nothing_is_queued_for_an_unlinked_case_or_a_save_that_changes_nothing(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")

    async def outbox_rows() -> int:
        async with database.transaction(write=False) as session:
            return len(list(await session.scalars(select(PushOutboxEntry))))

    queued = await outbox_rows()
    assert queued >= 1
    same = ok(await patch_case(client, case, title=case["title"]))
    assert same["id"] == case["id"]
    assert await outbox_rows() == queued
    ok(await patch_case(client, same, title="Changed"))
    assert await outbox_rows() == queued + 1

    await open_case(client)  # a patient with no link
    assert await outbox_rows() == queued + 1


async def test_a_405_at_write_time_is_reported_as_unsupported_not_retried(
    client: httpx.AsyncClient, database: Database, dispatcher: PushDispatcher
) -> None:
    fake = FakeEhr()
    # The CapabilityStatement says CarePlan can be created; the EHR refuses it anyway.
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    with respx.mock(assert_all_called=True) as router:
        refused = router.post(f"{BASE}/CarePlan").respond(
            405,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "not-supported", "diagnostics": "read-only"}
                ],
            },
        )
        fake.install(router)
        await dispatcher.run_until_idle()

    assert refused.call_count == 1
    status = await status_of(client, case["id"])
    assert (status["status"], status["attempts"]) == ("unsupported", 0)
    assert "405" in status["unsupported"]["CarePlan"]
    assert "read-only" in status["unsupported"]["CarePlan"]
    assert len(fake.of_type("Condition")) == 1  # the rest was written


async def test_linking_a_patient_queues_the_cases_it_already_has(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await open_case(client)  # its patient is not linked yet: nothing to push
    # A need, so the plan is no empty draft (an empty draft waits: test_empty_draft_held_back).
    ok(
        await client.post(
            f"/api/cases/{case['id']}/assessments",
            json={"kind": "initial", "needs": [{"domain": "food", "description": "Skips meals"}]},
        ),
        201,
    )
    async with database.transaction(write=False) as session:
        assert list(await session.scalars(select(PushOutboxEntry))) == []
    ok(
        await client.post(
            f"/api/patients/{case['patient_id']}/ehr-links",
            json={"connection_id": connection, "remote_id": "p-linked"},
        ),
        201,
    )
    async with database.transaction(write=False) as session:
        rows = list(await session.scalars(select(PushOutboxEntry)))
        sync = await session.scalar(select(PushSync).where(PushSync.case_id == case["id"]))
    assert [(r.case_id, r.connection_id) for r in rows] == [(case["id"], connection)]
    assert sync is not None
    assert sync.status == "pending"


async def test_a_withdrawn_goal_is_deleted_on_the_ehr_that_got_it_from_us(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    proposed = ok(
        await client.post(
            f"/api/cases/{case['id']}/goals",
            json={"description": "Try the day centre", "lifecycle_status": "proposed"},
        ),
        201,
    )
    await dispatcher.run_until_idle()
    [remote_goal] = [g for g in fake.of_type("Goal") if g["description"]["text"].startswith("Try")]

    app.dependency_overrides[authenticate_fhir] = lambda: FhirPrincipal(
        "planner", parse_scopes("system/*.cruds", strict=True)
    )
    try:
        assert (await client.delete(f"/fhir/Goal/{proposed['id']}")).status_code == 204
    finally:
        app.dependency_overrides.pop(authenticate_fhir, None)
    await dispatcher.run_until_idle()

    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert [r.url.path for r in deletes] == [f"/fhir/Goal/{remote_goal['id']}"]
    assert remote_goal["id"] not in {g["id"] for g in fake.of_type("Goal")}
    async with database.transaction(write=False) as session:
        links = await session.scalars(
            select(ResourceLink.local_id).where(ResourceLink.resource_type == "Goal")
        )
        assert proposed["id"] not in set(links)
    assert (await status_of(client, case["id"]))["status"] == "synced"
    await dispatcher.run_until_idle()  # nothing left to delete: no second DELETE
    assert len([r for r in fake.requests if r.method == "DELETE"]) == 1
