"""A case opened from the EHR, then pushed back to it: the imported resources count as in sync
(nothing is written for them), and a later local change is sent as that change alone, rebased
onto the EHR's own JSON with If-Match, so the EHR keeps what the case does not hold (its plan's
status, its identifiers)."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import select, update

from mappings.canonical import EXT_CASE_STATUS
from service.connections.models import Connection
from service.db.session import Database
from service.links.models import PatientLink
from service.pull.runner import PullRunner
from service.push.dispatcher import PushDispatcher
from service.settings import Settings
from tests.api.case_factory import move_case, ok, patch_case
from tests.conftest import settings_for
from tests.pull.test_case_from_ehr import RECORD
from tests.pull.test_pull_api import MRN, remote_patient, serve_record
from tests.push.fake_ehr import capabilities

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The test runs the push itself: no dispatcher of the app's own may race it.
    return settings_for(
        database_url,
        allow_insecure_http=True,
        allow_private_networks=True,
        pull_poll_seconds=0.2,
        push_dispatcher_enabled=False,
    )


async def open_from_ehr(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> str:
    """Pull the record, open a case from it; its id."""
    async with database.transaction() as session:
        await session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(capabilities=capabilities().model_dump(mode="json"))
        )
    serve_record(ehr, remote_patient(MRN), **RECORD)
    await client.post(
        f"/api/connections/{connection_id}/pulls", json={"patients": [{"remote_id": "r1"}]}
    )
    runner: PullRunner = app.state.pull_runner
    await asyncio.wait_for(runner.wait_idle(), 30)
    async with database.transaction(write=False) as session:
        [patient_id] = await session.scalars(select(PatientLink.patient_id))
    opened = ok(
        await client.post(f"/api/connections/{connection_id}/patients/{patient_id}/cases"), 201
    )
    return str(opened["case_id"])


async def test_an_opened_case_is_in_sync_and_pushes_only_its_own_changes(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    case_id = await open_from_ehr(app, client, database, ehr, connection_id)
    dispatcher = PushDispatcher(database)
    try:
        await dispatcher.run_until_idle()
        assert [c.request.method for c in ehr.calls if c.request.method in WRITES] == []

        put = ehr.put("/CarePlan/cp1").respond(
            json={"resourceType": "CarePlan", "id": "cp1", "meta": {"versionId": "8"}}
        )
        team = ehr.put("/CareTeam/t1").respond(
            json={"resourceType": "CareTeam", "id": "t1", "meta": {"versionId": "2"}}
        )
        provenance = ehr.put(url__regex=r".*/Provenance/[^/]+$").respond(
            201, json={"resourceType": "Provenance", "id": "pv1", "meta": {"versionId": "1"}}
        )
        case = ok(await client.get(f"/api/cases/{case_id}"))
        ok(await patch_case(client, case, title="Discharge plan, revised"))
        await dispatcher.run_until_idle()
    finally:
        await dispatcher.close()

    assert put.call_count == 1
    assert provenance.call_count == 1
    sent = orjson.loads(put.calls[0].request.content)
    assert put.calls[0].request.headers["If-Match"] == 'W/"7"'
    assert sent["title"] == "Discharge plan, revised"  # the case's change
    assert sent["status"] == "active"  # the EHR's: the case opened at intake did not overwrite it
    assert sent["goal"] == [{"reference": "Goal/g1"}, {"reference": "Goal/g2"}]  # the EHR's
    # The team's narrative names the case's title, so it changed too; only that is sent.
    [team_call] = team.calls
    sent_team = orjson.loads(team_call.request.content)
    assert "Discharge plan, revised" in sent_team["text"]["div"]
    assert sent_team["participant"] == [{"member": {"display": "Nurse Joy"}}]  # the EHR's
    other_writes = [
        c.request.url.path
        for c in ehr.calls
        if c.request.method in WRITES
        and not c.request.url.path.endswith(("/cp1", "/t1"))
        and "/Provenance/" not in c.request.url.path
    ]
    assert other_writes == []  # the goals, referral and concerns did not change


async def test_a_local_change_where_the_import_was_lossy_is_no_false_conflict(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    """The EHR's CarePlan has no case-status extension and says `active` where the case at
    intake projects `draft`: the import's merge base and the EHR's JSON differ there without
    anyone having edited anything, so moving the case on is the case's change to send."""
    case_id = await open_from_ehr(app, client, database, ehr, connection_id)
    put = ehr.put("/CarePlan/cp1").respond(
        json={"resourceType": "CarePlan", "id": "cp1", "meta": {"versionId": "8"}}
    )
    ehr.put(url__regex=r".*/CareTeam/t1$").respond(
        json={"resourceType": "CareTeam", "id": "t1", "meta": {"versionId": "2"}}
    )
    ehr.put(url__regex=r".*/Provenance/[^/]+$").respond(
        201, json={"resourceType": "Provenance", "id": "pv1", "meta": {"versionId": "1"}}
    )
    case = ok(await client.get(f"/api/cases/{case_id}"))
    case = await move_case(client, case, "assessment")
    ok(await patch_case(client, case, title="Discharge plan, revised"))
    dispatcher = PushDispatcher(database)
    try:
        await dispatcher.run_until_idle()
    finally:
        await dispatcher.close()

    assert ok(await client.get("/api/push/conflicts")) == []
    [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
    assert status["status"] == "synced", status
    assert put.call_count == 1
    sent = orjson.loads(put.calls[0].request.content)
    assert sent["title"] == "Discharge plan, revised"
    assert {"url": EXT_CASE_STATUS, "valueCode": "assessment"} in sent["extension"]
