"""Every change to a case stores new FHIR versions of what changed, in the same transaction,
with a Provenance naming those versions and the actor."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import select

from mappings.fhir import resource_model
from service.db.session import Database
from service.fhir_store.models import ResourceVersion, SearchEntry, StoredResource
from tests.api.case_factory import create_patient, ok, open_case, patch_case


async def stored(database: Database, resource_type: str | None = None) -> list[StoredResource]:
    async with database.sessions() as session:
        statement = select(StoredResource).order_by(StoredResource.created_at)
        if resource_type is not None:
            statement = statement.where(StoredResource.resource_type == resource_type)
        return list(await session.scalars(statement))


def body(row: StoredResource) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(row.content)
    return parsed


async def test_opening_a_case_stores_its_resources(
    client: httpx.AsyncClient, database: Database
) -> None:
    patient = await create_patient(client)
    case = await open_case(client, patient["id"])
    rows = await stored(database)
    kinds = sorted({r.resource_type for r in rows})
    assert kinds == ["CarePlan", "Patient", "Provenance"]
    (care_plan,) = [r for r in rows if r.resource_type == "CarePlan"]
    assert care_plan.id == case["id"]
    assert care_plan.patient_id == patient["id"]
    resource = body(care_plan)
    assert resource["meta"]["versionId"] == "1"
    assert resource["subject"]["reference"] == f"Patient/{patient['id']}"
    for row in rows:  # what is stored is valid FHIR, as served
        resource_model(row.resource_type).model_validate(body(row))


async def test_a_change_versions_only_what_changed(
    client: httpx.AsyncClient, database: Database
) -> None:
    patient = await create_patient(client)
    case = await open_case(client, patient["id"])
    before = {(r.resource_type, r.id): r.version_id for r in await stored(database)}
    case = ok(await patch_case(client, case, status="intake"))
    after = {(r.resource_type, r.id): r.version_id for r in await stored(database)}

    assert after[("CarePlan", case["id"])] == 2
    assert after[("Patient", patient["id"])] == 1
    new_provenances = [k for k in after if k not in before and k[0] == "Provenance"]
    assert len(new_provenances) == 1
    async with database.sessions() as session:
        provenance = await session.get(StoredResource, new_provenances[0])
        assert provenance is not None
        targets = [t["reference"] for t in body(provenance)["target"]]
        versions = list(
            await session.scalars(
                select(ResourceVersion.version_id).where(ResourceVersion.id == case["id"])
            )
        )
    assert targets == [f"CarePlan/{case['id']}/_history/2"]
    assert "apikey:bootstrap" in orjson.dumps(body(provenance)).decode()
    assert sorted(versions) == [1, 2]

    # The same values again change nothing, so no version is added.
    ok(await patch_case(client, case, status="intake"))
    again = {(r.resource_type, r.id): r.version_id for r in await stored(database)}
    assert again == after


async def test_plan_records_project_and_are_indexed(
    client: httpx.AsyncClient, database: Database
) -> None:
    case = await open_case(client)
    goal = ok(
        await client.post(
            f"/api/cases/{case['id']}/goals",
            json={
                "description": "Walk to the mailbox",
                "lifecycle_status": "active",
                "target": {"due_date": "2027-03-01"},
            },
        ),
        201,
    )
    (goal_row,) = await stored(database, "Goal")
    assert goal_row.id == goal["id"]
    assert body(goal_row)["lifecycleStatus"] == "active"
    care_plan = body((await stored(database, "CarePlan"))[0])
    assert {"reference": f"Goal/{goal['id']}"}.items() <= care_plan["goal"][0].items()
    async with database.sessions() as session:
        entries = {
            (e.param, e.value, e.low.date().isoformat() if e.low else None)
            for e in await session.scalars(
                select(SearchEntry).where(SearchEntry.resource_id == goal["id"])
            )
        }
    assert ("lifecycle-status", "active", None) in entries
    assert ("target-date", None, "2027-03-01") in entries
    assert ("patient", f"Patient/{case['patient_id']}", None) in entries


async def test_patient_changes_reach_the_patient_resource(
    client: httpx.AsyncClient, database: Database
) -> None:
    patient = await create_patient(client, given_name="Ada")
    ok(
        await client.patch(
            f"/api/patients/{patient['id']}",
            json={"given_name": "Augusta"},
            headers={"If-Match": f'W/"{patient["version"]}"'},
        )
    )
    (row,) = await stored(database, "Patient")
    assert row.version_id == 2
    assert body(row)["name"][0]["given"] == ["Augusta"]
