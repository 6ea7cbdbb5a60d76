"""Reading a patient's record from an EHR, against respx: which searches are sent, and how bad
resources, refusals, garbled pages and paging loops are reported."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from service.ehr.client import FhirClient, RetryPolicy
from service.ehr.discovery import Capabilities, ResourceCapability
from service.pull.reader import (
    TypeRead,
    keep_the_patients_own,
    read_by_reference,
    read_type,
    search_params,
)
from tests.ehr.fakes import BASE, RecordedSleeps, public_dns_policy

SERVER_TIME = "2026-11-30T10:00:00.123Z"


def condition(remote_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": remote_id,
        "meta": {"versionId": "1"},
        "subject": {"reference": "Patient/p1"},
        **extra,
    }


def page(*entries: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "meta": {"lastUpdated": SERVER_TIME},
        "link": [{"relation": "next", "url": next_url}] if next_url else [],
        "entry": list(entries),
    }


def match(resource: dict[str, Any], mode: str = "match") -> dict[str, Any]:
    return {"resource": resource, "search": {"mode": mode}}


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        yield router


@pytest.fixture
def client() -> FhirClient:
    return FhirClient(
        BASE, policy=public_dns_policy(), retry=RetryPolicy(max_retries=1), sleep=RecordedSleeps()
    )


def capabilities(**resources: list[str]) -> Capabilities:
    return Capabilities(
        resources={
            name: ResourceCapability(interactions=["read", "search-type"], search_params=params)
            for name, params in resources.items()
        }
    )


def test_the_search_follows_what_the_ehr_offers() -> None:
    offered = capabilities(
        Condition=["patient", "_lastUpdated"],
        CarePlan=["subject"],
        Observation=["patient", "category"],
        Goal=[],
    )
    since = dt.datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert search_params("Condition", "p1", offered, since, ()) == [
        ("patient", "p1"),
        ("_lastUpdated", "gt2026-11-30T10:00:00.123Z"),
    ]
    # No _lastUpdated search: the whole type is read again (the upserts make that harmless).
    assert search_params("CarePlan", "p1", offered, since, ()) == [("subject", "Patient/p1")]
    assert search_params("Observation", "p1", offered, None, ("survey", "social-history")) == [
        ("patient", "p1"),
        ("category", "survey,social-history"),
    ]
    assert search_params("Goal", "p1", offered, None, ()) == (
        "the EHR offers no patient or subject search on Goal"
    )
    assert search_params("CareTeam", "p1", offered, None, ()) == (
        "the EHR does not offer a search on CareTeam"
    )


async def test_bad_resources_are_reported_and_the_rest_of_the_page_is_kept(
    client: FhirClient, ehr: respx.MockRouter
) -> None:
    ehr.get("/Condition", params={"patient": "p1"}).respond(
        json=page(
            match(condition("c1")),
            match(condition("c2", clinicalStatus="not a concept")),
            match({"resourceType": "Observation", "id": "o1"}),
            match({"resourceType": "Patient", "id": "p1"}, mode="include"),
            match(condition("c1")),  # repeated across pages: kept once
        )
    )
    read = await read_type(client, "Condition", [("patient", "p1")])
    assert read.complete
    assert list(read.resources) == ["c1"]
    assert read.server_time == dt.datetime(2026, 11, 30, 10, 0, 0, 123000, tzinfo=dt.UTC)
    assert [(f.remote_id, f.reason.split(":")[0]) for f in read.invalid] == [
        ("c2", "not valid FHIR"),
        ("o1", "a 'Observation' entry without a usable id"),
    ]


async def test_a_refused_type_is_reported_with_the_servers_reason(
    client: FhirClient, ehr: respx.MockRouter
) -> None:
    route = ehr.get("/MedicationRequest").respond(
        403,
        json={
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "no scope"}],
        },
    )
    read = await read_type(client, "MedicationRequest", [("patient", "p1")])
    assert read.failure == "GET answered 403: no scope"
    assert route.call_count == 1  # a refusal is not retried


async def test_a_garbled_page_is_read_again_once(client: FhirClient, ehr: respx.MockRouter) -> None:
    route = ehr.get("/Condition").mock(
        side_effect=[
            httpx.Response(200, content=b'{"resourceType":"Bundle","entry":[{"reso'),
            httpx.Response(200, json=page(match(condition("c1")))),
        ]
    )
    read = await read_type(client, "Condition", [("patient", "p1")])
    assert read.complete
    assert list(read.resources) == ["c1"]
    assert route.call_count == 2


async def test_a_paging_loop_ends_the_type_with_a_reported_error(
    client: FhirClient, ehr: respx.MockRouter
) -> None:
    first = f"{BASE}/Condition?patient=p1"
    ehr.get(first).respond(json=page(match(condition("c1")), next_url=f"{BASE}/p2"))
    second = ehr.get("/p2").respond(json=page(match(condition("c2")), next_url=first))
    read = await read_type(client, "Condition", [("patient", "p1")])
    assert read.failure is not None
    assert "paging loop" in read.failure
    assert second.call_count == 1  # not read again: a loop is no transient fault
    # What was read before the loop is kept (the upserts make that safe); no cursor moves.
    assert set(read.resources) == {"c1", "c2"}
    assert read.server_time is None


async def test_resources_without_a_search_are_read_by_reference(
    client: FhirClient, ehr: respx.MockRouter
) -> None:
    ehr.get("/Goal/g1").respond(
        json={
            "resourceType": "Goal",
            "id": "g1",
            "lifecycleStatus": "active",
            "description": {"text": "Walk"},
            "subject": {"reference": "Patient/p1"},
        }
    )
    ehr.get("/Goal/g2").respond(404)
    read = await read_by_reference(client, "Goal", ["g1", "g2"])
    assert list(read.resources) == ["g1"]
    assert [(f.remote_id, f.reason) for f in read.invalid] == [("g2", "GET answered 404")]


def test_resources_about_another_patient_are_left_out_and_reported() -> None:
    read = TypeRead("Condition")
    read.resources = {
        "mine": {"resourceType": "Condition", "id": "mine", "subject": {"reference": "Patient/r1"}},
        "abs": {
            "resourceType": "Condition",
            "id": "abs",
            "subject": {"reference": "https://ehr.example.com/fhir/Patient/r1"},
        },
        "theirs": {
            "resourceType": "Condition",
            "id": "theirs",
            "subject": {"reference": "Patient/r2"},
        },
    }
    allergies = TypeRead("AllergyIntolerance")
    allergies.resources = {
        "a1": {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": {"reference": "Patient/r9"},
        }
    }
    keep_the_patients_own([read, allergies], "r1")
    assert sorted(read.resources) == ["abs", "mine"]
    assert [(f.remote_id, "Patient/r2" in f.reason) for f in read.invalid] == [("theirs", True)]
    assert allergies.resources == {}
