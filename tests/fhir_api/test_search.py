"""`/fhir` search: the US Core parameters, includes, paging, counts, scopes and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from service.db.session import Database
from service.fhir_store.search import encode_cursor
from tests.api.case_factory import create_patient, ok, open_case, patch_case
from tests.fhir_api.conftest import SetScopes, planned_case
from tests.fhir_api.test_reads import outcome


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


async def search(fhir: httpx.AsyncClient, path: str, **params: str) -> dict[str, Any]:
    response = await fhir.get(path, params=params)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


async def test_search_by_patient_status_and_identifier(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    case = plan["case"]
    other = await open_case(client)
    patient = case["patient_id"]

    assert ids(await search(fhir, "/CarePlan", patient=patient)) == [case["id"]]
    assert ids(await search(fhir, "/CarePlan", patient=f"Patient/{patient}")) == [case["id"]]
    assert ids(await search(fhir, "/CarePlan", subject=f"Patient/{patient}")) == [case["id"]]
    assert ids(await search(fhir, "/CarePlan", status="active")) == [case["id"]]
    both = await search(fhir, "/CarePlan", status="active,draft")
    assert sorted(ids(both)) == sorted([case["id"], other["id"]])
    assert both["total"] == 2
    assert ids(await search(fhir, "/CarePlan", _id=other["id"])) == [other["id"]]
    # `_id:not` excludes (it was read as `_id`, the opposite); other modifiers are refused.
    assert ids(await search(fhir, "/CarePlan", **{"_id:not": other["id"]})) == [case["id"]]
    assert (await fhir.get("/CarePlan", params={"_id:exact": other["id"]})).status_code == 400

    care_plan = (await fhir.get(f"/CarePlan/{case['id']}")).json()
    identifier = care_plan["identifier"][0]
    token = f"{identifier['system']}|{identifier['value']}"
    assert ids(await search(fhir, "/CarePlan", identifier=token)) == [case["id"]]
    assert ids(await search(fhir, "/CarePlan", identifier="urn:other|" + identifier["value"])) == []
    category = care_plan["category"][0]["coding"][0]
    by_category = f"{category['system']}|{category['code']}"
    assert set(ids(await search(fhir, "/CarePlan", category=by_category))) == {
        case["id"], other["id"]
    }  # fmt: skip
    assert ids(await search(fhir, "/CarePlan", **{"status:not": "active"})) == [other["id"]]


async def test_goal_and_service_request_parameters(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    goal, referral = plan["goal"], plan["referral"]
    patient = plan["case"]["patient_id"]

    assert ids(await search(fhir, "/Goal", **{"lifecycle-status": "active"})) == [goal["id"]]
    assert ids(await search(fhir, "/Goal", **{"lifecycle-status": "completed"})) == []
    assert ids(await search(fhir, "/Goal", **{"target-date": "2027-03-01"})) == [goal["id"]]
    assert ids(await search(fhir, "/Goal", **{"target-date": "ge2027-01-01"})) == [goal["id"]]
    assert ids(await search(fhir, "/Goal", **{"target-date": "lt2027-03-01"})) == []
    assert ids(await search(fhir, "/Goal", **{"target-date": "2027-03"})) == [goal["id"]]
    assert ids(await search(fhir, "/Goal", patient=patient)) == [goal["id"]]

    service_request = (await fhir.get(f"/ServiceRequest/{referral['id']}")).json()
    code = service_request["code"]["coding"][0]
    assert ids(await search(fhir, "/ServiceRequest", code=f"{code['system']}|{code['code']}")) == [
        referral["id"]
    ]
    assert ids(await search(fhir, "/ServiceRequest", status="active", patient=patient)) == [
        referral["id"]
    ]
    assert ids(await search(fhir, "/ServiceRequest", status="completed")) == []
    assert ids(await search(fhir, "/Condition", patient=patient)) == [plan["need"]["id"]]


async def test_last_updated_and_summary_count(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    updated = (await fhir.get(f"/CarePlan/{case['id']}")).json()["meta"]["lastUpdated"]
    day = updated[:10]
    assert ids(await search(fhir, "/CarePlan", _lastUpdated=day)) == [case["id"]]
    assert ids(await search(fhir, "/CarePlan", _lastUpdated="lt2001-01-01")) == []
    counted = await search(fhir, "/CarePlan", _summary="count")
    assert counted["total"] == 1
    assert "entry" not in counted


async def test_includes(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    plan = await planned_case(client)
    case_id = plan["case"]["id"]
    with_goals = await search(fhir, "/CarePlan", _id=case_id, _include="CarePlan:goal")
    assert ids(with_goals) == [case_id]
    assert ids(with_goals, "include") == [plan["goal"]["id"]]

    with_activities = await search(
        fhir, "/CarePlan", _id=case_id, _include="CarePlan:activity-reference"
    )
    assert ids(with_activities, "include") == [plan["referral"]["id"]]

    with_provenance = await search(fhir, "/CarePlan", _id=case_id, _revinclude="Provenance:target")
    provenances = [
        e["resource"] for e in with_provenance["entry"] if e["search"]["mode"] == "include"
    ]
    assert provenances
    assert all(p["resourceType"] == "Provenance" for p in provenances)
    assert all(any(case_id in t["reference"] for t in p["target"]) for p in provenances)

    # An include the token may not read is left out, not leaked.
    scopes("system/CarePlan.rs")
    limited = await search(fhir, "/CarePlan", _id=case_id, _include="CarePlan:goal")
    assert ids(limited) == [case_id]
    assert ids(limited, "include") == []


async def test_paging_is_stable_while_data_changes(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    cases = [await open_case(client) for _ in range(5)]
    first = await search(fhir, "/CarePlan", _count="2")
    assert first["total"] == 5
    seen = ids(first)
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")

    # Meanwhile: the first case changes (a new version) and a new case arrives.
    ok(await patch_case(client, cases[0], status="intake"))
    late = await open_case(client)

    while next_url:
        page = (await fhir.get(next_url)).json()
        seen += ids(page)
        next_url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
    assert seen == [c["id"] for c in cases] + [late["id"]]


async def test_total_is_counted_unless_the_client_waives_it(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    patient = await create_patient(client)
    for _ in range(3):
        await open_case(client, patient_id=patient["id"])
    first = await search(fhir, "/CarePlan", patient=patient["id"], _count="2")
    assert first["total"] == 3
    later_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert (await fhir.get(later_url)).json()["total"] == 3  # counted on later pages too
    waived = await search(fhir, "/CarePlan", patient=patient["id"], _count="2", _total="none")
    assert "total" not in waived
    assert len(ids(waived)) == 2
    whole = await search(fhir, "/CarePlan", patient=patient["id"], _total="none")
    assert whole["total"] == 3  # one page holds every match: the total costs nothing
    # A page past the last match (they were deleted since the link was given) has no row to
    # carry the total: it is counted on its own.
    past_the_end = encode_cursor(["9999-12-31T00:00:00+00:00", "zzz"])
    empty = await search(fhir, "/CarePlan", patient=patient["id"], _count="2", _cursor=past_the_end)
    assert ids(empty) == []
    assert empty["total"] == 3


async def test_the_total_is_right_on_either_side_of_a_whole_first_page(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    """A first page that holds every match is its own total (nothing else is counted); one
    with a next page counts them all. `_include`d resources are not matches."""
    plans = [await planned_case(client) for _ in range(3)]
    case_ids = [p["case"]["id"] for p in plans]
    goal_of = {p["case"]["id"]: p["goal"]["id"] for p in plans}
    filters: list[dict[str, str]] = [{}, {"status": "active"}]  # unfiltered, then filtered
    for where in filters:
        for count in ("2", "3", "4"):
            for sort in ("", "-_lastUpdated"):
                for include in ({}, {"_include": "CarePlan:goal"}):
                    asked = where | include | {"_count": count} | ({"_sort": sort} if sort else {})
                    bundle = await search(fhir, "/CarePlan", **asked)
                    assert bundle["total"] == 3, asked
                    shown = ids(bundle)
                    next_url = next(
                        (lk["url"] for lk in bundle["link"] if lk["relation"] == "next"), None
                    )
                    assert (next_url is not None) == (int(count) < 3), asked
                    while next_url:
                        page = (await fhir.get(next_url)).json()
                        assert page["total"] == 3, asked
                        shown += ids(page)
                        next_url = next(
                            (lk["url"] for lk in page["link"] if lk["relation"] == "next"), None
                        )
                    assert shown == (case_ids[::-1] if sort else case_ids), asked
                    if include:  # the goals of this page's matches, and no more
                        expected = sorted(goal_of[case_id] for case_id in ids(bundle))
                        assert sorted(ids(bundle, "include")) == expected, asked
        assert (await search(fhir, "/CarePlan", **where, _count="0"))["total"] == 3
        assert (await search(fhir, "/CarePlan", **where, _summary="count"))["total"] == 3
    none = await search(fhir, "/CarePlan", status="cancelled", _count="2")
    assert (none["total"], ids(none)) == (0, [])


@contextmanager
def store_reads(database: Database) -> Iterator[list[str]]:
    """The statements that read the stored resources while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "fhir_resources" in statement:
            seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def test_a_first_page_of_few_matches_is_its_own_total(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    """One patient's resources, or those named by `_id`, nearly always fit one page: the page
    is fetched alone and its rows are the total; only a page with a next one is counted."""
    database: Database = app.state.database
    patient = await create_patient(client)
    cases = [(await open_case(client, patient_id=patient["id"]))["id"] for _ in range(3)]
    await open_case(client)  # another patient's: not a match
    searches: list[tuple[dict[str, str], str | None]] = [
        ({"patient": patient["id"]}, None),
        ({"subject": f"Patient/{patient['id']}"}, None),
        ({"_id": ",".join(cases)}, None),
        ({}, patient["id"]),  # a patient-scoped token: its compartment
    ]
    for query, compartment in searches:
        if compartment is None:
            scopes("system/*.cruds")
        else:
            scopes("patient/*.rs", patient=compartment)
        for count, whole in (("3", True), ("4", True), ("2", False)):
            with store_reads(database) as run:
                bundle = await search(fhir, "/CarePlan", **query, _count=count)
            assert bundle["total"] == 3, (query, count)
            assert ids(bundle) == cases[: int(count)], (query, count)
            (page, *counted) = run
            assert "count(" not in page.lower(), (query, count)
            assert len(counted) == (0 if whole else 1), (query, count, run)  # then counted
            if not whole:
                later = next(lk["url"] for lk in bundle["link"] if lk["relation"] == "next")
                assert (await fhir.get(later)).json()["total"] == 3
        waived = await search(fhir, "/CarePlan", **query, _count="2", _total="none")
        assert "total" not in waived
        assert (await search(fhir, "/CarePlan", **query, _count="3", _total="none"))["total"] == 3
        assert (await search(fhir, "/CarePlan", **query, _count="0"))["total"] == 3
        assert (await search(fhir, "/CarePlan", **query, _summary="count"))["total"] == 3
    scopes("system/*.cruds")
    with store_reads(database) as run:
        everyone = await search(fhir, "/CarePlan", _count="10")
    assert everyone["total"] == 4
    assert len(run) == 1  # other first pages still carry their count on the page's query


async def test_patient_scope_confines_search(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    mine, theirs = await planned_case(client), await planned_case(client)
    scopes("patient/*.rs", patient=mine["case"]["patient_id"])
    assert ids(await search(fhir, "/CarePlan")) == [mine["case"]["id"]]
    assert ids(await search(fhir, "/Goal", patient=theirs["case"]["patient_id"])) == []
    assert ids(await search(fhir, "/Patient")) == [mine["case"]["patient_id"]]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"_count": "many"}, 400),
        ({"_sort": "colour"}, 400),
        ({"_summary": "text"}, 400),
        ({"_total": "roughly"}, 400),
        ({"target-date": "next-tuesday"}, 400),
        ({"_include": "Goal:subject"}, 400),
        ({"_include": "CarePlan:status"}, 400),
        ({"_cursor": "garbage!"}, 400),
    ],
)
async def test_bad_search_input_is_an_operation_outcome(
    fhir: httpx.AsyncClient, scopes: SetScopes, params: dict[str, str], status: int
) -> None:
    path = "/Goal" if "target-date" in params else "/CarePlan"
    outcome(await fhir.get(path, params=params), status)


async def test_unknown_parameters_are_ignored_unless_strict(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    lenient = await search(fhir, "/CarePlan", colour="blue")
    assert ids(lenient) == [case["id"]]
    assert "colour" not in lenient["link"][0]["url"]
    strict = await fhir.get(
        "/CarePlan", params={"colour": "blue"}, headers={"Prefer": "handling=strict"}
    )
    body = outcome(strict, 400)
    assert body["issue"][0]["expression"] == ["colour"]


async def test_search_by_post(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    case = await open_case(client)
    response = await fhir.post("/CarePlan/_search", data={"patient": case["patient_id"]})
    assert response.status_code == 200
    assert ids(response.json()) == [case["id"]]
