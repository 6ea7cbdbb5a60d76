"""A case of a patient linked to an EHR connection: the remote Patient is created first, then the
local patient is linked to it (as a pull would), then the case is opened and planned."""

from __future__ import annotations

from typing import Any

import httpx

from service.db.session import Database
from service.ehr.client import FhirClient
from service.links.repository import link_patient
from tests.api.case_factory import create_patient, ok, open_case


async def linked_case(
    client: httpx.AsyncClient, database: Database, fhir: FhirClient, connection_id: str
) -> tuple[dict[str, Any], str]:
    """(the case, the remote patient id) with one need, one goal and one referral."""
    created = await fhir.create({"resourceType": "Patient", "name": [{"family": "Remote"}]})
    assert created.resource is not None
    remote_id = str(created.resource["id"])
    return await case_of_linked_patient(client, database, connection_id, remote_id), remote_id


async def case_of_linked_patient(
    client: httpx.AsyncClient, database: Database, connection_id: str, remote_id: str
) -> dict[str, Any]:
    """A planned case of a new local patient linked to `Patient/<remote_id>` on the connection."""
    patient = await create_patient(client)
    async with database.unit_of_work() as session:
        await link_patient(session, connection_id, patient["id"], remote_id)
    case = await open_case(client, patient["id"], title="Home after hip fracture")
    base = f"/api/cases/{case['id']}"
    ok(
        await client.post(
            f"{base}/assessments",
            json={
                "kind": "initial",
                "summary": "Lives alone.",
                "needs": [
                    {
                        "domain": "functional",
                        "description": "Needs help bathing",
                        "severity": "moderate",
                    }
                ],
            },
        ),
        201,
    )
    [need] = ok(await client.get(f"{base}/needs"))["items"]
    goal = ok(
        await client.post(
            f"{base}/goals",
            json={
                "description": "Bathe independently",
                "need_ids": [need["id"]],
                "lifecycle_status": "active",
            },
        ),
        201,
    )
    ok(
        await client.post(
            f"{base}/interventions",
            json={
                "kind": "referral",
                "type": "home_health",
                "performer": {"kind": "organization", "name": "Sunrise Home Health"},
                "status": "active",
                "goal_ids": [goal["id"]],
                "need_ids": [need["id"]],
            },
        ),
        201,
    )
    planned: dict[str, Any] = ok(await client.get(base))
    return planned
