"""The DocumentReference fallback is a connection's own setting where the admin set one
(`document_fallback` in the connection admin API), else the global default."""

from __future__ import annotations

import httpx
import pytest

from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from service.settings import Settings
from tests.api.case_factory import ok
from tests.conftest import settings_for
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient


@pytest.fixture(params=[True, False], ids=["default-on", "default-off"])
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    return settings_for(
        database_url,
        push_dispatcher_enabled=False,
        allow_insecure_http=True,
        allow_private_networks=True,
        push_document_fallback=request.param,
    )


async def set_fallback(client: httpx.AsyncClient, connection: str, value: bool | None) -> None:
    url = f"/api/admin/connections/{connection}"
    current = ok(await client.get(url))
    updated = ok(
        await client.patch(
            url,
            json={"document_fallback": value},
            headers={"If-Match": f'W/"{current["version"]}"'},
        )
    )
    assert updated["document_fallback"] is value


async def test_each_connection_follows_its_own_setting_else_the_default(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
) -> None:
    # Three EHRs that cannot write CarePlan but take documents (one fake serves them all).
    caps = capabilities(read_only=["CarePlan"], documents=True)
    on, off, default = [await fake_connection(database, caps, name=n) for n in "abc"]
    await set_fallback(client, on, True)
    await set_fallback(client, off, False)
    names = {on: "on", off: "off", default: "default"}
    cases = {
        name: (await case_of_linked_patient(client, database, connection, f"p-{name}"))["id"]
        for connection, name in names.items()
    }

    await dispatcher.run_until_idle()

    sent = {"on"} | ({"default"} if settings.push_document_fallback else set())
    documents = {d["subject"]["reference"] for d in fake.of_type("DocumentReference")}
    assert documents == {f"Patient/p-{name}" for name in sent}
    for name, case_id in cases.items():
        [status] = ok(await client.get("/api/push/status", params={"case_id": case_id}))
        as_document = "sent as a DocumentReference" in status["unsupported"]["CarePlan"]
        assert as_document == (name in sent), name
