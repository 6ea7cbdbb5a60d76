"""Against respx: how a probe's answer is read (supported, not supported, proves nothing), that a
job's patients share one probe, the order override > CapabilityStatement > probe, and the scope's
Bulk `_type` and `_typeFilter`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from service.ehr.client import FhirClient, RetryPolicy
from service.ehr.discovery import Capabilities, ResourceCapability
from service.pull.bulk import BulkExport
from service.pull.scope import PullScope, bulk_type_filters, bulk_types
from service.pull.searches import UNKNOWN, PatientSearches, probe_patient_param
from tests.ehr.fakes import BASE, RecordedSleeps, public_dns_policy

BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": []}
NOT_SUPPORTED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "unknown: patient"}],
}


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> FhirClient:
    return FhirClient(
        BASE, policy=public_dns_policy(), retry=RetryPolicy(max_retries=0), sleep=RecordedSleeps()
    )


def silent(*types: str) -> Capabilities:
    """A CapabilityStatement that lists the types and declares no search parameter."""
    return Capabilities(
        resources={
            t: ResourceCapability(interactions=["read", "search-type"], search_params=[])
            for t in types
        }
    )


@pytest.mark.parametrize(
    ("patient_answer", "expected"),
    [
        (httpx.Response(200, json=BUNDLE), "patient"),
        (httpx.Response(400, json=NOT_SUPPORTED), "subject"),
        (httpx.Response(404), "subject"),
        (httpx.Response(405), "subject"),
        (httpx.Response(501), "subject"),
        (httpx.Response(200, json=NOT_SUPPORTED), "subject"),
        (
            httpx.Response(
                200,
                json={
                    **BUNDLE,
                    "entry": [{"resource": NOT_SUPPORTED, "search": {"mode": "outcome"}}],
                },
            ),
            "subject",
        ),
        (httpx.Response(403), UNKNOWN),
        (httpx.Response(200, text="<html>gateway</html>"), UNKNOWN),
    ],
)
async def test_a_probe_reads_the_answer(
    ehr: respx.MockRouter, client: FhirClient, patient_answer: httpx.Response, expected: object
) -> None:
    by_patient = ehr.get("/Condition", params={"patient": "p1", "_count": "1"}).mock(
        return_value=patient_answer
    )
    ehr.get("/Condition", params={"subject": "Patient/p1", "_count": "1"}).respond(json=BUNDLE)
    assert await probe_patient_param(client, "Condition", "p1") == expected
    assert by_patient.calls.last.request.headers["Prefer"] == "handling=strict"


async def test_neither_search_answered_is_no_search(
    ehr: respx.MockRouter, client: FhirClient
) -> None:
    ehr.get("/Condition").respond(400, json=NOT_SUPPORTED)
    assert await probe_patient_param(client, "Condition", "p1") is None


async def test_a_jobs_patients_share_one_probe_and_its_answer_is_remembered(
    ehr: respx.MockRouter, client: FhirClient
) -> None:
    probe = ehr.get("/Condition", params={"patient": "p1", "_count": "1"}).respond(json=BUNDLE)
    remembered: list[tuple[str, str | None]] = []

    async def remember(resource_type: str, param: str | None) -> None:
        remembered.append((resource_type, param))

    searches = PatientSearches(silent("Condition"), {}, {}, remember)
    answers = await asyncio.gather(
        *(searches.patient_params(client, ["Condition"], "p1") for _ in range(5))
    )
    assert answers == [{"Condition": "patient"}] * 5
    assert probe.call_count == 1
    assert remembered == [("Condition", "patient")]


async def test_an_answer_that_proves_nothing_is_tried_and_not_remembered(
    ehr: respx.MockRouter, client: FhirClient
) -> None:
    ehr.get("/Condition").respond(403)
    remembered: list[Any] = []

    async def remember(resource_type: str, param: str | None) -> None:
        remembered.append((resource_type, param))

    searches = PatientSearches(silent("Condition"), {}, {}, remember)
    assert await searches.patient_params(client, ["Condition"], "p1") == {"Condition": "patient"}
    assert remembered == []


async def test_overrides_then_the_statement_then_remembered_probes_decide_without_a_request(
    ehr: respx.MockRouter, client: FhirClient
) -> None:
    declared = Capabilities(
        resources={
            **silent("Condition", "Goal", "CarePlan").resources,
            "Encounter": ResourceCapability(
                interactions=["search-type"], search_params=["subject"]
            ),
        }
    )
    searches = PatientSearches(
        declared,
        overrides={"Condition": ["subject"], "Goal": []},
        remembered={"CarePlan": None},
    )
    assert await searches.patient_params(
        client, ["Condition", "Goal", "Encounter", "CarePlan", "Device"], "p1"
    ) == {"Condition": "subject", "Goal": None, "Encounter": "subject", "CarePlan": None}
    assert not ehr.calls  # Device is not listed at all: the statement decides, no probe


def test_a_scope_names_only_types_a_pull_reads() -> None:
    with pytest.raises(ValueError, match="not a type a pull reads: Patient, Claim"):
        PullScope(types=["Condition", "Patient", "Claim"])


async def test_bulk_asks_for_the_scopes_types_and_observation_categories(
    ehr: respx.MockRouter, client: FhirClient
) -> None:
    scope = PullScope(
        types=["Condition", "Observation"], observation_categories=["vital-signs", "laboratory"]
    )
    types = bulk_types(scope)
    assert types == ["Patient", "Condition", "Observation"]
    filters = bulk_type_filters(scope, types)
    assert filters == ["Observation?category=vital-signs%2Claboratory"]
    assert bulk_type_filters(scope, ["Patient", "Condition"]) == []

    route = ehr.get("/Group/g1/$export").respond(
        202, headers={"Content-Location": "/fhir/bulk-status/1"}
    )
    await BulkExport(client, public_dns_policy()).kick_off("g1", types, None, filters)
    params = route.calls.last.request.url.params
    assert params["_type"] == "Patient,Condition,Observation"
    # One filter: the categories OR-ed inside it, the comma of the value encoded in the query.
    assert params.get_list("_typeFilter") == ["Observation?category=vital-signs%2Claboratory"]
