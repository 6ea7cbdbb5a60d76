"""A whole case worked through the API, as the README walks it."""

from __future__ import annotations

import httpx

from tests.api.case_factory import create_patient, move_case, ok, open_case


async def test_a_case_from_referral_to_closure(client: httpx.AsyncClient) -> None:
    patient = await create_patient(client)
    case = await open_case(client, patient["id"], program="transitional_care", priority="urgent")
    assert case["status"] == "referral"
    case = await move_case(client, case, "intake", "assessment")
    base = f"/api/cases/{case['id']}"

    assessment = ok(
        await client.post(
            f"{base}/assessments",
            json={
                "kind": "initial",
                "summary": "Lives alone; discharged after hip fracture.",
                "strengths": ["motivated", "supportive daughter"],
                "preferences": ["stay at home"],
                "risks": [{"description": "falls", "level": "high"}],
                "needs": [
                    {
                        "domain": "functional",
                        "description": "Needs help bathing",
                        "severity": "moderate",
                    },
                    {
                        "domain": "transportation",
                        "description": "No ride to clinic",
                        "severity": "mild",
                    },
                ],
            },
        ),
        201,
    )
    assert assessment["risks"] == [{"description": "falls", "level": "high"}]
    needs = ok(await client.get(f"{base}/needs"))["items"]
    assert sorted(n["domain"] for n in needs) == ["functional", "transportation"]
    functional = next(n for n in needs if n["domain"] == "functional")

    case = await move_case(client, case, "planning")
    goal = ok(
        await client.post(
            f"{base}/goals",
            json={
                "description": "Bathe independently",
                "need_ids": [functional["id"]],
                "expressed_by": "patient",
                "priority": "high",
                "lifecycle_status": "active",
                "target": {"detail_text": "independent", "due_date": "2027-01-31"},
            },
        ),
        201,
    )
    assert goal["need_ids"] == [functional["id"]]
    assert goal["target"]["due_date"] == "2027-01-31"

    referral = ok(
        await client.post(
            f"{base}/interventions",
            json={
                "kind": "referral",
                "type": "home_health",
                "performer": {"kind": "organization", "name": "Sunrise Home Health"},
                "status": "active",
                "goal_ids": [goal["id"]],
                "need_ids": [functional["id"]],
            },
        ),
        201,
    )
    assert referral["goal_ids"] == [goal["id"]]
    assert referral["requested_by"] == "apikey:bootstrap"
    member = ok(
        await client.post(
            f"{base}/care-team", json={"role": "caregiver", "name": "Grace Lovelace"}
        ),
        201,
    )
    assert member["role"] == "caregiver"

    case = await move_case(client, case, "active", "monitoring")
    check_in = ok(
        await client.post(
            f"{base}/check-ins",
            json={
                "mode": "phone",
                "notes": "Bathing with aide twice a week.",
                "goal_progress": [
                    {"goal_id": goal["id"], "note": "Improving", "achievement_status": "improving"}
                ],
            },
        ),
        201,
    )
    assert [p["achievement_status"] for p in check_in["goal_progress"]] == ["improving"]
    goal_now = ok(await client.get(f"{base}/goals/{goal['id']}"))
    assert goal_now["achievement_status"] == "improving"
    assert goal_now["version"] > goal["version"]

    referral_done = ok(
        await client.patch(
            f"{base}/interventions/{referral['id']}",
            json={"status": "completed", "referral_outcome": "service_provided"},
            headers={"If-Match": f'W/"{referral["version"]}"'},
        )
    )
    assert referral_done["status"] == "completed"

    transition = ok(
        await client.post(
            f"{base}/transitions",
            json={
                "kind": "level_of_care_change",
                "from_setting": "home_with_home_health",
                "to_setting": "home",
                "planned_date": "2027-02-01",
                "follow_ups": ["PCP visit within 7 days"],
            },
        ),
        201,
    )
    assert transition["follow_ups"] == ["PCP visit within 7 days"]
    ok(await client.post(f"{base}/notes", json={"text": "Daughter will drive to PCP."}), 201)

    case = await move_case(client, case, "transition")
    # The goal is still open: the closure is refused and names it, and nothing changes.
    refused = ok(
        await client.patch(
            base,
            json={"status": "closed", "closure_reason": "goals_met"},
            headers={"If-Match": f'W/"{case["version"]}"'},
        ),
        409,
    )
    assert refused["rule"] == "case.close.open-items"
    assert [(i["resource_type"], i["id"], i["status"]) for i in refused["open_items"]] == [
        ("Goal", goal["id"], "active")
    ]
    assert ok(await client.get(base))["status"] == "transition"
    closed = ok(
        await client.patch(
            base,
            json={"status": "closed", "closure_reason": "goals_met", "open_items": "complete"},
            headers={"If-Match": f'W/"{case["version"]}"'},
        )
    )
    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None
    goal_closed = ok(await client.get(f"{base}/goals/{goal['id']}"))
    assert goal_closed["lifecycle_status"] == "completed"

    history = ok(await client.get(f"{base}/history"))
    entities = [(e["action"], e["entity"]) for e in history]
    assert entities[0] == ("created", "case")
    assert ("created", "need") in entities
    assert ("progress", "goal") in entities
    assert history[-1]["changes"]["status"] == ["transition", "closed"]
    assert {e["actor"] for e in history} == {"apikey:bootstrap"}


async def test_lists_filter_and_page(client: httpx.AsyncClient) -> None:
    patient = await create_patient(client)
    made = [await open_case(client, patient["id"], program="geriatric") for _ in range(5)]
    await open_case(client, patient["id"], program="social_work", manager="cm.other")

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"program": "geriatric", "limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = ok(await client.get("/api/cases", params=params))
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["id"] for c in made]
    by_manager = ok(await client.get("/api/cases", params={"manager": "cm.other"}))["items"]
    assert [c["program"] for c in by_manager] == ["social_work"]
    assert (
        len(ok(await client.get("/api/cases", params={"patient_id": patient["id"]}))["items"]) == 6
    )


async def test_overdue_goals_filter(client: httpx.AsyncClient) -> None:
    case = await open_case(client)
    late = await open_case(client)
    for c, due in ((case, "2999-01-01"), (late, "2001-01-01")):
        ok(
            await client.post(
                f"/api/cases/{c['id']}/goals",
                json={
                    "description": "Walk",
                    "lifecycle_status": "active",
                    "target": {"due_date": due},
                },
            ),
            201,
        )
    overdue = ok(await client.get("/api/cases", params={"goals_overdue": "true"}))["items"]
    assert [c["id"] for c in overdue] == [late["id"]]
    goals = ok(await client.get(f"/api/cases/{late['id']}/goals", params={"overdue": "true"}))
    assert len(goals["items"]) == 1
    assert (
        ok(await client.get(f"/api/cases/{case['id']}/goals", params={"overdue": "true"}))["items"]
        == []
    )
