"""The case's program and its needs' domains can be fixed after the case opens; a case closes
only when its open goals and referrals are settled; the history is JSON, never Python reprs."""

from __future__ import annotations

import httpx
import orjson

from tests.api.case_factory import ok, patch_case
from tests.fhir_api.conftest import planned_case


async def test_program_and_need_domain_are_updatable(client: httpx.AsyncClient) -> None:
    plan = await planned_case(client)
    case, need = plan["case"], plan["need"]
    base = f"/api/cases/{case['id']}"
    changed = ok(await patch_case(client, case, program="social_work"))
    assert changed["program"] == "social_work"
    need = ok(
        await client.patch(
            f"{base}/needs/{need['id']}",
            json={"domain": "financial"},
            headers={"If-Match": f'W/"{need["version"]}"'},
        )
    )
    assert need["domain"] == "financial"
    history = ok(await client.get(f"{base}/history"))
    assert {"program": ["nursing", "social_work"]} in [e["changes"] for e in history]
    assert {"domain": ["housing", "financial"]} in [e["changes"] for e in history]


async def test_the_history_holds_json_values_not_python_reprs(client: httpx.AsyncClient) -> None:
    plan = await planned_case(client)
    base = f"/api/cases/{plan['case']['id']}"
    goal = plan["goal"]
    ok(
        await client.patch(
            f"{base}/goals/{goal['id']}",
            json={"target": {"detail_text": "lease signed", "due_date": "2026-12-14"}},
            headers={"If-Match": f'W/"{goal["version"]}"'},
        )
    )
    referral = plan["referral"]
    ok(
        await client.patch(
            f"{base}/interventions/{referral['id']}",
            json={"performer": {"kind": "organization", "name": "County Housing"}},
            headers={"If-Match": f'W/"{referral["version"]}"'},
        )
    )
    history = ok(await client.get(f"{base}/history"))
    assert "datetime." not in orjson.dumps(history).decode()
    [target] = [
        e["changes"]["target"]
        for e in history
        if e["action"] == "updated" and "target" in e["changes"]
    ]
    assert target[0]["due_date"] == "2027-03-01"
    assert target[1] == {
        "measure": None,
        "detail_quantity": None,
        "detail_unit": None,
        "detail_text": "lease signed",
        "due_date": "2026-12-14",
    }
    [performer] = [
        e["changes"]["performer"]
        for e in history
        if e["action"] == "updated" and "performer" in e["changes"]
    ]
    assert performer[1] == {"kind": "organization", "name": "County Housing", "identifier": None}


async def test_closing_settles_each_open_item_as_the_request_says(
    client: httpx.AsyncClient,
) -> None:
    plan = await planned_case(client)
    case = plan["case"]
    base = f"/api/cases/{case['id']}"
    goal, referral = plan["goal"], plan["referral"]
    closing = {"status": "closed", "closure_reason": "patient_declined"}
    # Per item, every open item must be named.
    missing = ok(await patch_case(client, case, **closing, open_items={goal["id"]: "cancel"}), 409)
    assert referral["id"] in missing["detail"]
    # Completing a referral needs its outcome: the rule of referrals holds, nothing changes.
    refused = ok(await patch_case(client, case, **closing, open_items="complete"), 409)
    assert refused["rule"] == "referral.complete.outcome"
    assert ok(await client.get(f"{base}/goals/{goal['id']}"))["lifecycle_status"] == "active"
    closed = ok(
        await patch_case(
            client, case, **closing, open_items={goal["id"]: "complete", referral["id"]: "cancel"}
        )
    )
    assert closed["status"] == "closed"
    assert ok(await client.get(f"{base}/goals/{goal['id']}"))["lifecycle_status"] == "completed"
    revoked = ok(await client.get(f"{base}/interventions/{referral['id']}"))
    assert revoked["status"] == "revoked"
    # A closed case's program is final.
    closed_program = ok(await patch_case(client, closed, program="geriatric"), 409)
    assert closed_program["rule"] == "case.closed.final"
