"""`/api/patients/{id}/ehr-links`: a local patient's identity on an EHR connection."""

from __future__ import annotations

import httpx
import pytest

from tests.api.case_factory import create_patient, ok
from tests.connections.conftest import registration

pytestmark = pytest.mark.usefixtures("ehr")


async def _connection(client: httpx.AsyncClient, name: str) -> str:
    body = ok(await client.post("/api/admin/connections", json=registration(name=name)), 201)
    return str(body["id"])


async def test_link_list_and_unlink(client: httpx.AsyncClient) -> None:
    connection_id = await _connection(client, "ehr-a")
    patient = await create_patient(client)
    url = f"/api/patients/{patient['id']}/ehr-links"

    response = await client.post(url, json={"connection_id": connection_id, "remote_id": "p-17"})
    link = ok(response, 201)
    assert response.headers["Location"] == f"{url}/{link['id']}"
    assert (link["patient_id"], link["remote_id"]) == (patient["id"], "p-17")
    # Linking the same remote patient again is idempotent: the same link comes back.
    again = ok(
        await client.post(url, json={"connection_id": connection_id, "remote_id": "p-17"}), 201
    )
    assert again["id"] == link["id"]
    assert [row["id"] for row in ok(await client.get(url))] == [link["id"]]

    assert (await client.delete(f"{url}/{link['id']}")).status_code == 204
    assert ok(await client.get(url)) == []
    missing = await client.delete(f"{url}/{link['id']}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_a_remote_patient_names_one_local_patient(
    client: httpx.AsyncClient,
) -> None:
    connection_id = await _connection(client, "ehr-b")
    first = await create_patient(client)
    second = await create_patient(client)
    body = {"connection_id": connection_id, "remote_id": "shared"}
    ok(await client.post(f"/api/patients/{first['id']}/ehr-links", json=body), 201)

    refused = await client.post(f"/api/patients/{second['id']}/ehr-links", json=body)
    assert refused.status_code == 409
    assert first["id"] in refused.json()["detail"]
    assert ok(await client.get(f"/api/patients/{second['id']}/ehr-links")) == []


async def test_bad_links_are_refused(client: httpx.AsyncClient) -> None:
    connection_id = await _connection(client, "ehr-c")
    patient = await create_patient(client)
    url = f"/api/patients/{patient['id']}/ehr-links"
    unknown_connection = await client.post(url, json={"connection_id": "nope", "remote_id": "x"})
    assert unknown_connection.status_code == 404
    bad_id = await client.post(url, json={"connection_id": connection_id, "remote_id": "a/b"})
    assert bad_id.status_code == 422
    unknown_patient = await client.post(
        "/api/patients/nobody/ehr-links", json={"connection_id": connection_id, "remote_id": "x"}
    )
    assert unknown_patient.status_code == 404
