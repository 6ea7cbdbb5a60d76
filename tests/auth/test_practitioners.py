"""Who a user or API key is as a clinician: set by an admin, checked (an NPI's check digit),
and taken at once by the cases the actor acts on (their stored projection names the
Practitioner)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import select

from mappings.to_fhir.people import practitioner_id
from service.db.session import Database
from service.fhir_store.models import StoredResource
from tests.api.case_factory import ok
from tests.fhir_api.conftest import planned_case

ACTOR = "apikey:bootstrap"  # the tests' client


async def stored(database: Database, resource_type: str) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        rows = await session.scalars(
            select(StoredResource).where(StoredResource.resource_type == resource_type)
        )
        return [orjson.loads(r.content) for r in rows]


async def test_setting_an_identity_reprojects_the_cases_the_actor_acted_on(
    client: httpx.AsyncClient, database: Database
) -> None:
    await planned_case(client)
    [referral] = await stored(database, "ServiceRequest")
    assert referral["requester"]["reference"] == "Organization/casebridge"

    body = {"family_name": "Lee", "given_names": ["Ana"], "npi": "1234567893"}
    set_ = ok(await client.put(f"/api/admin/practitioners/{ACTOR}", json=body))
    assert set_["npi"] == "1234567893"

    [referral] = await stored(database, "ServiceRequest")
    assert referral["requester"]["reference"] == f"Practitioner/{practitioner_id(ACTOR)}"
    [practitioner] = await stored(database, "Practitioner")
    assert practitioner["name"] == [{"text": "Ana Lee", "family": "Lee", "given": ["Ana"]}]
    assert [p["actor"] for p in ok(await client.get("/api/admin/practitioners"))] == [ACTOR]

    ok(await client.delete(f"/api/admin/practitioners/{ACTOR}"))
    [referral] = await stored(database, "ServiceRequest")
    assert referral["requester"]["reference"] == "Organization/casebridge"


async def test_a_wrong_npi_or_actor_is_refused_as_a_problem(client: httpx.AsyncClient) -> None:
    wrong_digit = await client.put(
        f"/api/admin/practitioners/{ACTOR}", json={"family_name": "Lee", "npi": "1234567890"}
    )
    assert wrong_digit.status_code == 422
    assert wrong_digit.headers["content-type"] == "application/problem+json"
    not_an_actor = await client.put(
        "/api/admin/practitioners/Dr%20Lee", json={"family_name": "Lee"}
    )
    assert not_an_actor.status_code == 422
    assert not_an_actor.headers["content-type"] == "application/problem+json"


async def test_a_case_manager_key_cannot_set_identities(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    key = ok(await client.post("/api/admin/api-keys", json={"name": "planner"}), 201)["key"]
    refused = await anonymous.put(
        "/api/admin/practitioners/apikey:planner",
        json={"family_name": "Lee"},
        headers={"X-API-Key": key},
    )
    assert refused.status_code == 403
