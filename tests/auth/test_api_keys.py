"""Service-account API keys: issued by an admin, shown once, stored hashed, revocable."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from service.auth.models import ApiKey
from service.db.session import Database
from tests.api.case_factory import create_patient, ok


async def test_issue_use_and_revoke_a_key(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, database: Database
) -> None:
    issued = ok(await client.post("/api/admin/api-keys", json={"name": "discharge-app"}), 201)
    key = issued["key"]
    assert issued["role"] == "case_manager"
    as_app = {"X-API-Key": key}

    patient = ok(
        await anonymous.post(
            "/api/patients", json={"given_name": "A", "family_name": "B"}, headers=as_app
        ),
        201,
    )
    case = ok(
        await anonymous.post(
            "/api/cases", json={"patient_id": patient["id"], "program": "nursing"}, headers=as_app
        ),
        201,
    )
    history = ok(await anonymous.get(f"/api/cases/{case['id']}/history", headers=as_app))
    assert history[0]["actor"] == "apikey:discharge-app"

    # A case manager's key cannot administer keys.
    forbidden = await anonymous.get("/api/admin/api-keys", headers=as_app)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"

    # Listed without the key or its hash; stored only as a hash.
    listed = ok(await client.get("/api/admin/api-keys"))
    assert [k["name"] for k in listed] == ["discharge-app"]
    assert "key" not in listed[0]
    assert "key_hash" not in listed[0]
    async with database.sessions() as session:
        row = (await session.scalars(select(ApiKey))).one()
    assert key not in (row.key_hash, row.name, row.id)
    assert len(row.key_hash) == 64

    revoked = ok(await client.delete(f"/api/admin/api-keys/{issued['id']}"))
    assert revoked["revoked_at"] is not None
    assert (await anonymous.get("/api/cases", headers=as_app)).status_code == 401


async def test_key_names_are_unique_and_validated(client: httpx.AsyncClient) -> None:
    ok(await client.post("/api/admin/api-keys", json={"name": "etl", "role": "admin"}), 201)
    duplicate = await client.post("/api/admin/api-keys", json={"name": "etl"})
    assert duplicate.status_code == 409
    assert duplicate.json()["rule"] == "api-key.name.unique"
    assert (await client.post("/api/admin/api-keys", json={"name": "Bad Name!"})).status_code == 422
    assert (
        await client.post("/api/admin/api-keys", json={"name": "x", "role": "root"})
    ).status_code == 422
    assert len(ok(await client.get("/api/admin/api-keys"))) == 1
    assert (await client.delete("/api/admin/api-keys/nope")).status_code == 404


async def test_an_admin_key_can_issue_keys(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    admin = ok(await client.post("/api/admin/api-keys", json={"name": "ops", "role": "admin"}), 201)
    issued = await anonymous.post(
        "/api/admin/api-keys", json={"name": "etl"}, headers={"X-API-Key": admin["key"]}
    )
    assert issued.status_code == 201
    await create_patient(client)
