"""An EHR that cannot write CarePlan (as Epic and Oracle Health expose it) but accepts
documents gets the rendered plan as a DocumentReference, when the fallback is configured."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from mappings.fhir import resource_model
from mappings.to_fhir.plan_document import PLAN_DOCUMENT_SYSTEM
from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from service.settings import Settings
from tests.api.case_factory import ok, patch_case
from tests.conftest import settings_for
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient

READ_ONLY = ("CarePlan", "Goal", "ServiceRequest")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        push_dispatcher_enabled=False,
        allow_insecure_http=True,
        allow_private_networks=True,
        push_document_fallback=True,
    )


def rendered(document: dict[str, Any]) -> str:
    [content] = document["content"]
    return base64.b64decode(content["attachment"]["data"]).decode()


async def test_the_rendered_plan_goes_as_a_document_and_follows_changes(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(
        database, capabilities(read_only=READ_ONLY, documents=True, transaction=True)
    )
    case = await case_of_linked_patient(client, database, connection, "p1")

    await dispatcher.run_until_idle()

    assert fake.of_type("CarePlan") == []
    [document] = fake.of_type("DocumentReference")
    resource_model("DocumentReference").model_validate(document)
    assert document["identifier"] == [{"system": PLAN_DOCUMENT_SYSTEM, "value": case["id"]}]
    assert document["subject"]["reference"] == "Patient/p1"
    assert document["type"]["coding"][0]["code"] == "18776-5"
    assert "Home after hip fracture" in rendered(document)
    assert "Bathe independently" in rendered(document)
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "synced"
    assert "sent as a DocumentReference" in status["unsupported"]["CarePlan"]

    ok(await patch_case(client, case, title="Home with support"))
    await dispatcher.run_until_idle()

    [document] = fake.of_type("DocumentReference")
    assert document["meta"]["versionId"] == "2"
    assert "Home with support" in rendered(document)
    [bundle] = [w for w in fake.writes() if w.url.path == "/fhir"][-1:]
    [entry] = [
        e
        for e in httpx.Response(200, content=bundle.content).json()["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
    ]
    assert entry["request"]["ifMatch"] == 'W/"1"'


async def test_without_a_document_capability_the_plan_stays_unsupported(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities(read_only=READ_ONLY))
    case = await case_of_linked_patient(client, database, connection, "p1")

    await dispatcher.run_until_idle()

    assert fake.of_type("DocumentReference") == []
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "unsupported"
