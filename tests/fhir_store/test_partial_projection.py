"""A commit projects only the resources its change set can alter, and what it stores is
byte-for-byte what a full re-projection of the case would store."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import or_, select, tuple_

from mappings.projection import ProjectedResource, project_case, validated
from mappings.to_fhir.context import care_team_id
from mappings.to_fhir.people import PEOPLE_TYPES
from service.db.session import Database
from service.fhir_store import projector
from service.fhir_store.case_record import load_case_record
from service.fhir_store.models import StoredResource
from tests.api.case_factory import ok
from tests.fhir_api.conftest import SetScopes, planned_case
from tests.fhir_api.test_creates_and_deletes import referral


async def assert_stored_is_a_full_projection(database: Database, case_id: str) -> None:
    """The live resources of the case (and its patient, and who acts in it) are exactly those
    a full projection produces, each stored from the same bytes."""
    async with database.sessions() as session:
        record = await load_case_record(session, case_id)
        full = {(r.resource_type, r.id): r for r in project_case(record)}
        people = [key for key in full if key[0] in PEOPLE_TYPES]
        rows = await session.scalars(
            select(StoredResource).where(
                or_(
                    StoredResource.case_id == case_id,
                    StoredResource.id == record.patient.id,
                    tuple_(StoredResource.resource_type, StoredResource.id).in_(people),
                ),
                StoredResource.resource_type != "Provenance",
                StoredResource.deleted.is_(False),
            )
        )
        stored = {(r.resource_type, r.id): r for r in rows}
    assert stored.keys() == full.keys()
    for key, row in stored.items():
        assert row.content_hash == hashlib.sha256(full[key].json).hexdigest(), key
        served = orjson.loads(row.content)
        meta = served.pop("meta")
        assert (meta["versionId"], served) == (
            str(row.version_id),
            {k: v for k, v in full[key].resource.items() if k != "meta"},
        )


def _patch(path: str, row: dict[str, Any], **fields: Any) -> tuple[str, dict[str, Any], str]:
    return path, fields, f'W/"{row["version"]}"'


async def test_mixed_writes_store_what_a_full_projection_would(
    client: httpx.AsyncClient, fhir: httpx.AsyncClient, scopes: SetScopes, database: Database
) -> None:
    plan = await planned_case(client)
    case, need, goal, referral_row = plan["case"], plan["need"], plan["goal"], plan["referral"]
    base = f"/api/cases/{case['id']}"
    await assert_stored_is_a_full_projection(database, case["id"])

    async def patch(path: str, row: dict[str, Any], **fields: Any) -> dict[str, Any]:
        headers = {"If-Match": f'W/"{row["version"]}"'}
        changed: dict[str, Any] = ok(await client.patch(path, json=fields, headers=headers))
        await assert_stored_is_a_full_projection(database, case["id"])
        return changed

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        made: dict[str, Any] = ok(await client.post(path, json=body), 201)
        await assert_stored_is_a_full_projection(database, case["id"])
        return made

    await patch(f"{base}/goals/{goal['id']}", goal, description="Stable housing by spring")
    await patch(f"{base}/needs/{need['id']}", need, severity="moderate")
    [assessment] = ok(await client.get(f"{base}/assessments"))["items"]
    await patch(f"{base}/assessments/{assessment['id']}", assessment, summary="Re-read")
    member = await post(f"{base}/care-team", {"role": "caregiver", "name": "Grace Lovelace"})
    await patch(f"{base}/care-team/{member['id']}", member, name="Grace Byron")
    await post(
        f"{base}/check-ins",
        {
            "mode": "phone",
            "goal_progress": [
                {"goal_id": goal["id"], "note": "Viewing flats", "achievement_status": "improving"}
            ],
        },
    )
    await patch(f"{base}/interventions/{referral_row['id']}", referral_row, priority="urgent")
    await post(f"{base}/notes", {"text": "Landlord agreed to wait."})

    # /fhir: an update of a Goal, a create of a ServiceRequest and its delete (it vanishes).
    stored_goal = (await fhir.get(f"/Goal/{goal['id']}")).json()
    stored_goal["description"]["text"] = "Stable housing, lease signed"
    updated = await fhir.put(f"/Goal/{goal['id']}", json=stored_goal)
    assert updated.status_code == 200, updated.text
    await assert_stored_is_a_full_projection(database, case["id"])
    draft = await fhir.post("/ServiceRequest", json=referral(case["patient_id"], case["id"]))
    assert draft.status_code == 201, draft.text
    await assert_stored_is_a_full_projection(database, case["id"])
    deleted = await fhir.delete(f"/ServiceRequest/{draft.json()['id']}")
    assert deleted.status_code == 204, deleted.text
    await assert_stored_is_a_full_projection(database, case["id"])

    # The team entered in error as a whole: its CareTeam vanishes, the CarePlan drops it.
    dismissed = await fhir.delete(f"/CareTeam/{care_team_id(case['id'])}")
    assert dismissed.status_code == 204, dismissed.text
    await assert_stored_is_a_full_projection(database, case["id"])

    patient = ok(await client.get(f"/api/patients/{case['patient_id']}"))
    ok(
        await client.patch(
            f"/api/patients/{patient['id']}",
            json={"given_name": "Augusta"},
            headers={"If-Match": f'W/"{patient["version"]}"'},
        )
    )
    await assert_stored_is_a_full_projection(database, case["id"])
    case = ok(await client.get(base))
    await patch(base, case, title="Housing first")


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        ("goal", {"Goal", "CarePlan", "Provenance"}),
        # The case's actors are API keys with no person: the service's Organization.
        (
            "case",
            {
                "Patient",
                "Organization",
                "Condition",
                "Goal",
                "ServiceRequest",
                "CarePlan",
                "Provenance",
            },
        ),
    ],
)
async def test_a_record_change_builds_only_what_it_can_alter(
    client: httpx.AsyncClient,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    write: str,
    expected: set[str],
) -> None:
    plan = await planned_case(client)
    built: list[str] = []

    def counting(resource: dict[str, Any]) -> ProjectedResource:
        built.append(resource["resourceType"])
        return validated(resource)

    monkeypatch.setattr(projector, "validated", counting)
    base = f"/api/cases/{plan['case']['id']}"
    row = plan[write]
    path = base if write == "case" else f"{base}/goals/{row['id']}"
    headers = {"If-Match": f'W/"{row["version"]}"'}
    ok(
        await client.patch(
            path, json={"description" if write == "goal" else "title": "new"}, headers=headers
        )
    )
    assert set(built) == expected
    await assert_stored_is_a_full_projection(database, plan["case"]["id"])


async def test_dismissing_the_team_builds_only_the_care_plan(
    client: httpx.AsyncClient,
    fhir: httpx.AsyncClient,
    scopes: SetScopes,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A team dismissed alters the CareTeam (gone) and the CarePlan (no `careTeam`), nothing
    else of the case: only the CarePlan and the Provenance are built."""
    plan = await planned_case(client)
    case_id = plan["case"]["id"]
    member = {"role": "caregiver", "name": "Grace Lovelace"}
    ok(await client.post(f"/api/cases/{case_id}/care-team", json=member), 201)
    team = f"/CareTeam/{care_team_id(case_id)}"
    assert (await fhir.get(team)).status_code == 200
    built: list[str] = []

    def counting(resource: dict[str, Any]) -> ProjectedResource:
        built.append(resource["resourceType"])
        return validated(resource)

    monkeypatch.setattr(projector, "validated", counting)
    dismissed = await fhir.delete(team)
    assert dismissed.status_code == 204, dismissed.text
    assert set(built) == {"CarePlan", "Provenance"}
    assert (await fhir.get(team)).status_code == 410
    await assert_stored_is_a_full_projection(database, case_id)
