"""Bad input gets a 4xx problem+json naming what is wrong, and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.api.problems import PROBLEM_MEDIA_TYPE
from tests.api.case_factory import active_case, create_patient, ok, open_case, patch_case


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def count(client: httpx.AsyncClient, path: str) -> int:
    return len(ok(await client.get(path, params={"limit": "200"}))["items"])


async def test_malformed_json_is_400_and_writes_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/patients",
        content=b'{"given_name": "Ada", "family_name": ',
        headers={"Content-Type": "application/json"},
    )
    body = problem(response, 400)
    assert body["type"].endswith("/malformed-json")
    assert await count(client, "/api/patients") == 0


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"nickname": "Ada"}, "body.nickname"),  # unknown field
        ({"birth_date": "last spring"}, "body.birth_date"),  # wrong type
        ({"gender": "sometimes"}, "body.gender"),  # not in the vocabulary
        ({"identifiers": [{"system": "urn:oid:1.2"}]}, "body.identifiers.0.value"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], location: str
) -> None:
    body = {"given_name": "Ada", "family_name": "Lovelace", "gender": "female"} | fields
    response = await client.post("/api/patients", json=body)
    problem_body = problem(response, 422)
    assert location in [e["location"] for e in problem_body["errors"]]
    assert await count(client, "/api/patients") == 0


async def test_wrong_type_on_update_is_422_and_leaves_the_case(client: httpx.AsyncClient) -> None:
    case = await open_case(client)
    problem(await patch_case(client, case, priority=7), 422)
    problem(await patch_case(client, case, colour="blue"), 422)
    assert ok(await client.get(f"/api/cases/{case['id']}"))["version"] == case["version"]


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    huge = {"given_name": "A" * 2_000_000, "family_name": "B", "gender": "female"}
    problem(await client.post("/api/patients", json=huge), 413)
    assert await count(client, "/api/patients") == 0


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    """No Content-Length to trust: the limit is enforced while the body is read."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"given_name": "'
        for _ in range(40):
            yield b"A" * 65_536
        yield b'", "family_name": "B", "gender": "female"}'

    response = await client.post(
        "/api/patients", content=chunks(), headers={"Content-Type": "application/json"}
    )
    problem(response, 413)
    assert await count(client, "/api/patients") == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "not-a-key"}, {"Authorization": "Bearer not.a.jwt"}],
    ids=["none", "unknown-api-key", "bearer-without-issuer"],
)
async def test_missing_or_bad_credential_is_401(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await anonymous.post(
        "/api/patients", json={"given_name": "A", "family_name": "B"}, headers=headers
    )
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    problem(await anonymous.get("/api/cases", headers=headers), 401)
    assert await count(client, "/api/patients") == 0


async def test_update_without_if_match_is_428(client: httpx.AsyncClient) -> None:
    case = await open_case(client)
    response = await client.patch(f"/api/cases/{case['id']}", json={"status": "intake"})
    problem(response, 428)
    assert ok(await client.get(f"/api/cases/{case['id']}"))["status"] == "referral"


async def test_stale_if_match_is_412(client: httpx.AsyncClient) -> None:
    case = await open_case(client)
    moved = ok(await patch_case(client, case, status="intake"))
    assert moved["version"] == case["version"] + 1
    body = problem(await patch_case(client, case, manager="cm.late"), 412)
    assert body["type"].endswith("/precondition-failed")
    now = ok(await client.get(f"/api/cases/{case['id']}"))
    assert (now["manager"], now["version"]) == (case["manager"], moved["version"])


async def test_update_answers_with_an_etag_that_if_match_accepts(
    client: httpx.AsyncClient,
) -> None:
    case = await open_case(client)
    response = await client.patch(
        f"/api/cases/{case['id']}",
        json={"manager": "cm.new"},
        headers={"If-Match": f'W/"{case["version"]}"'},
    )
    etag = response.headers["ETag"]
    again = await client.patch(
        f"/api/cases/{case['id']}", json={"manager": "cm.newer"}, headers={"If-Match": etag}
    )
    assert again.status_code == 200, again.text
    assert (await client.get(f"/api/cases/{case['id']}")).headers["ETag"] == again.headers["ETag"]


@pytest.mark.parametrize(
    ("path", "fields", "rule"),
    [
        ("", {"status": "active"}, "case.status.transition"),
        ("", {"status": "closed"}, "case.close.reason"),
    ],
)
async def test_invalid_case_transition_names_the_rule(
    client: httpx.AsyncClient, path: str, fields: dict[str, Any], rule: str
) -> None:
    case = await open_case(client)
    body = problem(await patch_case(client, case, **fields), 409)
    assert body["rule"] == rule
    now = ok(await client.get(f"/api/cases/{case['id']}"))
    assert (now["status"], now["version"]) == ("referral", case["version"])


async def test_goal_cannot_be_achieved_while_case_not_active(client: httpx.AsyncClient) -> None:
    case = await open_case(client)
    base = f"/api/cases/{case['id']}/goals"
    goal = ok(
        await client.post(base, json={"description": "Walk", "lifecycle_status": "active"}), 201
    )
    response = await client.patch(
        f"{base}/{goal['id']}",
        json={"achievement_status": "achieved"},
        headers={"If-Match": f'W/"{goal["version"]}"'},
    )
    assert problem(response, 409)["rule"] == "goal.achieved.case-active"
    assert ok(await client.get(f"{base}/{goal['id']}"))["achievement_status"] is None


async def test_referral_cannot_complete_without_outcome(client: httpx.AsyncClient) -> None:
    case = await active_case(client)
    base = f"/api/cases/{case['id']}/interventions"
    referral = ok(
        await client.post(
            base,
            json={
                "kind": "referral",
                "type": "housing_assistance",
                "performer": {"kind": "organization", "name": "City Housing"},
                "status": "active",
            },
        ),
        201,
    )
    response = await client.patch(
        f"{base}/{referral['id']}",
        json={"status": "completed"},
        headers={"If-Match": f'W/"{referral["version"]}"'},
    )
    assert problem(response, 409)["rule"] == "referral.complete.outcome"
    assert ok(await client.get(f"{base}/{referral['id']}"))["status"] == "active"


async def test_links_across_cases_are_refused(client: httpx.AsyncClient) -> None:
    mine, other = await open_case(client), await open_case(client)
    foreign = ok(
        await client.post(f"/api/cases/{other['id']}/goals", json={"description": "Eat"}), 201
    )
    response = await client.post(
        f"/api/cases/{mine['id']}/interventions",
        json={"kind": "service", "type": "food_assistance", "goal_ids": [foreign["id"]]},
    )
    assert problem(response, 409)["rule"] == "links.same-case"
    assert await count(client, f"/api/cases/{mine['id']}/interventions") == 0


async def test_unknown_records_are_404(client: httpx.AsyncClient) -> None:
    patient = await create_patient(client)
    problem(await client.get("/api/cases/does-not-exist"), 404)
    problem(await client.get(f"/api/patients/{patient['id']}x"), 404)
    response = await client.post(
        "/api/cases", json={"patient_id": "nobody", "program": "nursing", "manager": "cm"}
    )
    assert response.status_code in (404, 409, 422)
    problem(response, response.status_code)
    assert await count(client, "/api/cases") == 0


async def test_a_closed_case_refuses_new_records(client: httpx.AsyncClient) -> None:
    case = await open_case(client)
    ok(await patch_case(client, case, status="closed", closure_reason="patient_declined"))
    response = await client.post(f"/api/cases/{case['id']}/notes", json={"text": "late note"})
    assert problem(response, 409)["rule"] == "case.closed.final"
    assert await count(client, f"/api/cases/{case['id']}/notes") == 0
