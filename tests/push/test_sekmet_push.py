"""Pushing cases to a real FHIR server on loopback (sekmet-fhir, SMART Backend Services with
write scopes): create, update with If-Match, a remote edit that forces a 412 and a merge, a true
conflict resolved through the API, and a worker killed mid-push.

What sekmet's CapabilityStatement says shapes the strategy: it offers `transaction`, conditional
create and versioned update for CarePlan, Condition, ServiceRequest and Provenance, but does not
list Goal or CareTeam at all, so those are reported as not supported by this EHR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import delete, select

from service.db.session import Database
from service.fhir_store.models import StoredResource
from service.links.models import ResourceLink
from service.push import pusher
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok, patch_case
from tests.push.conftest import TRANSACTION_SCOPE, WRITE_SCOPES, Ehr, register_ehr
from tests.push.linked_cases import linked_case
from tests.smart.sekmet_server import SekmetServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def dispatcher(database: Database) -> AsyncIterator[PushDispatcher]:
    pusher = PushDispatcher(database)
    yield pusher
    await pusher.close()


async def sync_status(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
    return dict(status)


async def care_plan(ehr: Ehr, case_id: str) -> dict[str, Any]:
    [plan] = await ehr.by_identifier("CarePlan", case_id)
    return plan


async def test_a_linked_case_is_pushed_once_with_remote_references(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    case, remote_patient = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    assert (await sync_status(client, case["id"]))["status"] == "pending"

    await dispatcher.run_until_idle()

    status = await sync_status(client, case["id"])
    assert status["status"] == "synced", status["last_error"]
    plan = await care_plan(ehr, case["id"])
    assert plan["subject"]["reference"] == f"Patient/{remote_patient}"
    assert plan["title"] == "Home after hip fracture"
    conditions = [r async for r in ehr.fhir.search("Condition", [("subject", remote_patient)])]
    assert len(conditions) == 1
    assert plan["addresses"] == [{"reference": f"Condition/{conditions[0]['id']}"}]
    [referral] = [r async for r in ehr.fhir.search("ServiceRequest", [("subject", remote_patient)])]
    assert referral["basedOn"][0]["reference"] == f"CarePlan/{plan['id']}"
    # sekmet lists neither Goal nor CareTeam in its CapabilityStatement.
    assert "Goal" in status["unsupported"]
    assert "not supported by this EHR" in status["unsupported"]["Goal"]
    assert "goal" not in plan  # no reference to a Goal the EHR does not have
    provenances = [
        r async for r in ehr.fhir.search("Provenance", [("target", f"CarePlan/{plan['id']}")])
    ]
    assert provenances, "the push carries a Provenance"
    [author] = [a for a in provenances[0]["agent"] if a["type"]["coding"][0]["code"] == "author"]
    assert author["who"]["display"] == "cm.jones"

    # Nothing changed: nothing is queued, and a forced round writes nothing.
    await dispatcher.run_until_idle()
    assert (await care_plan(ehr, case["id"]))["meta"]["versionId"] == plan["meta"]["versionId"]


async def test_a_change_is_pushed_as_an_update_with_if_match(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    case, _ = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    first = await care_plan(ehr, case["id"])

    ok(await patch_case(client, case, title="Home with support"))
    assert (await sync_status(client, case["id"]))["status"] == "pending"
    await dispatcher.run_until_idle()

    plan = await care_plan(ehr, case["id"])
    assert plan["id"] == first["id"]
    assert plan["title"] == "Home with support"
    assert int(plan["meta"]["versionId"]) == int(first["meta"]["versionId"]) + 1
    async with database.transaction(write=False) as session:
        link = await session.scalar(
            select(ResourceLink).where(
                ResourceLink.connection_id == ehr.connection_id,
                ResourceLink.resource_type == "CarePlan",
                ResourceLink.remote_id == plan["id"],
            )
        )
    assert link is not None
    assert link.remote_version_id == plan["meta"]["versionId"]
    status = await sync_status(client, case["id"])
    assert status["status"] == "synced"
    assert status["synced_version"] == link.pushed_version_id


async def test_a_remote_edit_forces_a_412_and_is_merged(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    case, _ = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    remote = await care_plan(ehr, case["id"])
    edited = await ehr.fhir.update(remote | {"description": "Edited in the EHR"})
    assert edited.version_id == str(int(remote["meta"]["versionId"]) + 1)

    ok(await patch_case(client, case, title="Home with support"))
    await dispatcher.run_until_idle()

    plan = await care_plan(ehr, case["id"])
    assert plan["title"] == "Home with support"  # ours
    assert plan["description"] == "Edited in the EHR"  # theirs, kept
    assert int(plan["meta"]["versionId"]) == int(remote["meta"]["versionId"]) + 2
    assert (await sync_status(client, case["id"]))["status"] == "synced"
    assert ok(await client.get("/api/push/conflicts")) == []
    # The EHR's edit is the case's too: applied through the case, in its history, and not
    # written back to the EHR again (the version above counts one update and one merge).
    async with database.transaction(write=False) as session:
        stored = await session.get(StoredResource, ("CarePlan", case["id"]))
        provenances = await session.scalars(
            select(StoredResource.content).where(
                StoredResource.resource_type == "Provenance", StoredResource.case_id == case["id"]
            )
        )
        authors = {a["who"].get("display") for p in provenances for a in orjson.loads(p)["agent"]}
    assert stored is not None
    assert orjson.loads(stored.content)["description"] == "Edited in the EHR"
    assert f"ehr:{ehr.connection_id}" in authors  # the change names the EHR

    # The EHR's edit stays in the merge base: the next local change does not undo it.
    case = ok(await client.get(f"/api/cases/{case['id']}"))
    ok(await patch_case(client, case, title="Home, then day care"))
    await dispatcher.run_until_idle()
    plan = await care_plan(ehr, case["id"])
    assert (plan["title"], plan["description"]) == ("Home, then day care", "Edited in the EHR")


async def test_a_true_conflict_parks_the_push_until_a_person_resolves_it(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    case, _ = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    remote = await care_plan(ehr, case["id"])
    await ehr.fhir.update(remote | {"title": "Title from the EHR"})

    ok(await patch_case(client, case, title="Title from the case manager"))
    await dispatcher.run_until_idle()

    assert (await sync_status(client, case["id"]))["status"] == "conflict"
    [conflict] = ok(await client.get("/api/push/conflicts", params={"case_id": case["id"]}))
    assert conflict["resource_type"] == "CarePlan"
    assert conflict["elements"] == ["title"]
    assert conflict["local"]["title"] == "Title from the case manager"
    assert conflict["remote"]["title"] == "Title from the EHR"
    assert (await care_plan(ehr, case["id"]))["title"] == "Title from the EHR"  # not overwritten

    resolved = ok(
        await client.post(
            f"/api/push/conflicts/{conflict['id']}/resolve", json={"resolution": "keep-local"}
        )
    )
    assert resolved["status"] == "resolved"
    assert (await care_plan(ehr, case["id"]))["title"] == "Title from the case manager"
    assert (await sync_status(client, case["id"]))["status"] == "pending"
    await dispatcher.run_until_idle()
    assert (await sync_status(client, case["id"]))["status"] == "synced"
    assert ok(await client.get("/api/push/conflicts")) == []


async def test_with_a_system_scope_the_push_is_one_transaction(
    client: httpx.AsyncClient,
    database: Database,
    writable_sekmet: SekmetServer,
    dispatcher: PushDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_ordered_writes(*_args: object) -> None:
        raise AssertionError("the push fell back to ordered writes")

    monkeypatch.setattr(pusher, "push_ordered", no_ordered_writes)
    ehr = await register_ehr(client, database, writable_sekmet, TRANSACTION_SCOPE)
    try:
        case, remote_patient = await linked_case(client, database, ehr.fhir, ehr.connection_id)
        await dispatcher.run_until_idle()
        status = await sync_status(client, case["id"])
        assert status["status"] == "synced", status["last_error"]
        plan = await care_plan(ehr, case["id"])
        [condition] = [r async for r in ehr.fhir.search("Condition", [("subject", remote_patient)])]
        assert plan["addresses"] == [{"reference": f"Condition/{condition['id']}"}]
        [referral] = [
            r async for r in ehr.fhir.search("ServiceRequest", [("subject", remote_patient)])
        ]
        assert referral["basedOn"][0]["reference"] == f"CarePlan/{plan['id']}"

        ok(await patch_case(client, case, title="Home with support"))
        await dispatcher.run_until_idle()
        updated = await care_plan(ehr, case["id"])
        assert updated["title"] == "Home with support"
        assert int(updated["meta"]["versionId"]) == int(plan["meta"]["versionId"]) + 1
    finally:
        await ehr.fhir.aclose()


@pytest.mark.parametrize(
    "scopes", [WRITE_SCOPES, TRANSACTION_SCOPE], ids=["ordered", "transaction"]
)
async def test_a_push_replayed_after_its_links_were_lost_leaves_one_provenance(
    client: httpx.AsyncClient,
    database: Database,
    writable_sekmet: SekmetServer,
    dispatcher: PushDispatcher,
    scopes: str,
) -> None:
    ehr = await register_ehr(client, database, writable_sekmet, scopes)
    try:
        case, _ = await linked_case(client, database, ehr.fhir, ehr.connection_id)
        await dispatcher.run_until_idle()
        plan = await care_plan(ehr, case["id"])

        # A worker killed after the EHR applied the push, before it recorded the links.
        async with database.transaction() as session:
            await session.execute(
                delete(ResourceLink).where(ResourceLink.connection_id == ehr.connection_id)
            )
        ok(await client.post(f"/api/push/status/{case['id']}/{ehr.connection_id}/replay"))
        await dispatcher.run_until_idle()

        status = await sync_status(client, case["id"])
        assert status["status"] == "synced", status["last_error"]
        assert [p["id"] for p in await ehr.by_identifier("CarePlan", case["id"])] == [plan["id"]]
        provenances = [
            r async for r in ehr.fhir.search("Provenance", [("target", f"CarePlan/{plan['id']}")])
        ]
        assert len(provenances) == 1
        assert provenances[0]["meta"]["versionId"] == "2"  # sent again, onto the same one
    finally:
        await ehr.fhir.aclose()
