"""A push replayed after its worker died between the EHR applying it and its links being
recorded sends everything again: the resources are found as sent, and the Provenance, created
by update at an id derived from what the push wrote, is the same one, not a second."""

from __future__ import annotations

import httpx
import orjson
import pytest
from sqlalchemy import delete

from service.db.session import Database
from service.links.models import ResourceLink
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


async def lose_links_and_replay(
    client: httpx.AsyncClient, database: Database, case_id: str, connection: str
) -> None:
    """What a worker killed before recording the push leaves: no links, the pair sent again."""
    async with database.transaction() as session:
        await session.execute(delete(ResourceLink).where(ResourceLink.connection_id == connection))
    replayed = ok(await client.post(f"/api/push/status/{case_id}/{connection}/replay"))
    assert replayed["status"] == "pending"


@pytest.mark.parametrize("transaction", [True, False], ids=["transaction", "ordered"])
async def test_a_replayed_push_leaves_one_provenance(
    client: httpx.AsyncClient,
    database: Database,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
    transaction: bool,
) -> None:
    connection = await fake_connection(database, capabilities(transaction=transaction))
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()
    [first] = fake.of_type("Provenance")
    written = {(t, r["id"]) for (t, _), r in fake.store.items() if t != "Provenance"}
    requests_before = len(fake.requests)

    await lose_links_and_replay(client, database, case["id"], connection)
    await dispatcher.run_until_idle()

    # The replay did go to the EHR, and found every resource there as sent.
    assert len(fake.requests) > requests_before
    assert {(t, r["id"]) for (t, _), r in fake.store.items() if t != "Provenance"} == written
    [again] = fake.of_type("Provenance")
    assert again["id"] == first["id"]
    assert again["meta"]["versionId"] == "2"  # the replay overwrote it
    provenance_writes = [
        w for w in fake.writes() if "Provenance" in (w.url.path + w.content.decode())
    ]
    assert provenance_writes, "the replay sent the Provenance again"
    if transaction:
        [entry] = [
            e
            for e in orjson.loads(fake.writes()[-1].content)["entry"]
            if e["resource"]["resourceType"] == "Provenance"
        ]
        assert entry["request"] == {"method": "PUT", "url": f"Provenance/{first['id']}"}
        # Nothing else was written again: every resource is still at its first version.
        assert {r["meta"]["versionId"] for r in fake.store.values() if r is not again} == {"1"}
    status = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status[0]["status"] == "synced"
