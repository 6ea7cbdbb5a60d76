"""Review items through `/api/review-items`: listed (open by default, filtered, paginated),
de-duplicated when the same change is refused again, and decided: the EHR's value applied to
the case through the domain rules (422, item left open, when they still refuse), or the case's
value kept; counted in /metrics."""

from __future__ import annotations

from typing import Any

import httpx

from service.db.session import Database
from service.review.models import ReviewItem, ReviewSource
from service.review.repository import open_review_item
from tests.api.case_factory import active_case, ok, patch_case


async def _item(
    database: Database,
    case: dict[str, Any],
    *,
    elements: tuple[str, ...] = ("title",),
    ehr_value: dict[str, Any] | None = None,
    reason: str = "refused by the rules",
    source: ReviewSource = ReviewSource.merge,
) -> ReviewItem:
    async with database.transaction() as session:
        return await open_review_item(
            session,
            source=source,
            reason=reason,
            resource_type="CarePlan",
            elements=elements,
            ehr_value={"title": "Title from the EHR"} if ehr_value is None else ehr_value,
            case_value={"title": case["title"]},
            case_id=case["id"],
            patient_id=case["patient_id"],
            local_id=case["id"],
            remote_reference="CarePlan/remote-1",
        )


async def test_an_item_is_listed_read_and_a_refusal_repeated_updates_it(
    client: httpx.AsyncClient, database: Database
) -> None:
    case = await active_case(client, title="Case title")
    first = await _item(database, case, reason="first refusal")
    again = await _item(database, case, reason="refused again", ehr_value={"title": "Newer"})
    other = await _item(database, case, elements=("description",), ehr_value={})

    assert again.id == first.id  # the same disagreement: one item, refreshed
    page = ok(await client.get("/api/review-items", params={"case_id": case["id"]}))
    assert [i["id"] for i in page["items"]] == [first.id, other.id]
    shown = ok(await client.get(f"/api/review-items/{first.id}"))
    assert shown["reason"] == "refused again"
    assert shown["ehr_value"] == {"title": "Newer"}
    assert shown["case_value"] == {"title": "Case title"}
    assert (shown["status"], shown["source"], shown["elements"]) == ("open", "merge", ["title"])

    one = ok(await client.get("/api/review-items", params={"limit": 1}))
    assert [i["id"] for i in one["items"]] == [first.id]
    rest = ok(await client.get("/api/review-items", params={"cursor": one["next_cursor"]}))
    assert [i["id"] for i in rest["items"]] == [other.id]
    assert ok(await client.get("/api/review-items", params={"patient_id": "nobody"}))["items"] == []


async def test_apply_ehr_value_changes_the_case_through_the_rules(
    client: httpx.AsyncClient, database: Database
) -> None:
    case = await active_case(client, title="Case title")
    item = await _item(database, case)

    decided = ok(
        await client.post(
            f"/api/review-items/{item.id}/decision",
            json={"decision": "apply-ehr-value", "note": "the EHR's is right"},
        )
    )

    assert (decided["status"], decided["decision"]) == ("resolved", "apply-ehr-value")
    assert decided["decided_by"] == "apikey:bootstrap"
    assert decided["note"] == "the EHR's is right"
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Title from the EHR"
    history = ok(await client.get(f"/api/cases/{case['id']}/history"))
    assert history[-1]["actor"] == "apikey:bootstrap"
    assert history[-1]["changes"]["title"] == ["Case title", "Title from the EHR"]
    assert ok(await client.get("/api/review-items"))["items"] == []  # open only, by default
    resolved = ok(await client.get("/api/review-items", params={"status": "resolved"}))
    assert [i["id"] for i in resolved["items"]] == [item.id]
    again = await client.post(
        f"/api/review-items/{item.id}/decision", json={"decision": "dismissed"}
    )
    assert again.status_code == 409


async def test_apply_ehr_value_the_rules_still_refuse_is_422_and_the_item_stays_open(
    client: httpx.AsyncClient, database: Database
) -> None:
    case = await active_case(client, title="Case title")
    item = await _item(database, case)
    ok(await patch_case(client, case, status="closed", closure_reason="goals_met"))

    refused = await client.post(
        f"/api/review-items/{item.id}/decision", json={"decision": "apply-ehr-value"}
    )

    assert refused.status_code == 422, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "closed" in refused.json()["detail"]
    assert ok(await client.get(f"/api/review-items/{item.id}"))["status"] == "open"
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Case title"


async def test_keep_case_value_changes_nothing_and_is_in_the_history(
    client: httpx.AsyncClient, database: Database
) -> None:
    case = await active_case(client, title="Case title")
    item = await _item(database, case)

    decided = ok(
        await client.post(
            f"/api/review-items/{item.id}/decision", json={"decision": "keep-case-value"}
        )
    )

    assert (decided["status"], decided["decision"]) == ("resolved", "keep-case-value")
    assert ok(await client.get(f"/api/cases/{case['id']}"))["title"] == "Case title"
    last = ok(await client.get(f"/api/cases/{case['id']}/history"))[-1]
    assert (last["entity"], last["entity_id"]) == ("review_item", item.id)
    assert last["changes"]["decision"] == [None, "keep-case-value"]


async def test_bad_requests_are_problems_and_callers_must_authenticate(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, database: Database
) -> None:
    case = await active_case(client)
    item = await _item(database, case)
    missing = await client.get("/api/review-items/nope")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    bad = await client.post(f"/api/review-items/{item.id}/decision", json={"decision": "maybe"})
    assert bad.status_code == 422
    assert (await anonymous.get("/api/review-items")).status_code == 401
    denied = await anonymous.post(
        f"/api/review-items/{item.id}/decision", json={"decision": "dismissed"}
    )
    assert denied.status_code == 401


async def test_open_items_are_a_metrics_gauge(
    client: httpx.AsyncClient, database: Database
) -> None:
    case = await active_case(client)
    await _item(database, case)
    await _item(database, case, source=ReviewSource.resolution)

    text = (await client.get("/metrics")).text

    assert 'casebridge_review_items_open{source="merge"} 1.0' in text
    assert 'casebridge_review_items_open{source="resolution"} 1.0' in text
    assert 'casebridge_review_items_open{source="pull"} 0.0' in text
