from __future__ import annotations

import httpx


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_create_patient_and_case(client: httpx.AsyncClient) -> None:
    p = await client.post(
        "/api/patients",
        json={"family_name": "Doe", "identifiers": [{"system": "urn:mrn", "value": "1"}]},
    )
    assert p.status_code == 201, p.text
    c = await client.post("/api/cases", json={"patient_id": p.json()["id"], "program": "nursing"})
    assert c.status_code == 201, c.text
    assert c.headers["etag"] == 'W/"1"'
