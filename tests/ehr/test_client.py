from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import respx

from mappings.fhir import Goal
from service.ehr.client import FhirClient, RetryPolicy, parse_retry_after
from service.ehr.errors import (
    EhrConnectionError,
    EhrForbidden,
    EhrNotFound,
    EhrPreconditionFailed,
    EhrProtocolError,
    EhrRateLimited,
    EhrServerError,
    EhrTimeout,
    EhrUnauthorized,
    EhrUrlRefused,
)
from tests.ehr.fakes import BASE, RecordedSleeps, public_dns_policy

GOAL = {
    "resourceType": "Goal",
    "id": "g1",
    "meta": {"versionId": "3"},
    "lifecycleStatus": "active",
    "description": {"text": "Walk 20 minutes a day"},
    "subject": {"reference": "Patient/p1"},
}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "scope lacks Goal.rs"}],
}


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def patient(identifier: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": identifier}


class FakeTokens:
    """A token provider that hands out tok-1, tok-2, ... and counts re-authentications."""

    def __init__(self) -> None:
        self.current = "tok-1"
        self.reauthentications = 0

    async def access_token(self) -> str:
        return self.current

    async def reauthenticate(self, rejected_token: str) -> str:
        self.reauthentications += 1
        self.current = f"tok-{self.reauthentications + 1}"
        return self.current


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
async def client(sleeps: RecordedSleeps) -> AsyncIterator[FhirClient]:
    async with FhirClient(
        BASE,
        policy=public_dns_policy(),
        retry=RetryPolicy(max_retries=3, base_delay=0.01),
        sleep=sleeps,
        jitter=lambda: 1.0,  # the upper bound of full jitter, so delays are predictable
    ) as fhir:
        yield fhir


# ---- reads ----------------------------------------------------------------------------------


async def test_read_with_a_model_class_returns_a_validated_resource(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").respond(200, json=GOAL)
        goal = await client.read(Goal, "g1")
    assert isinstance(goal, Goal)
    assert goal.description.text == "Walk 20 minutes a day"


async def test_read_with_a_type_name_returns_the_raw_dict(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.get("/Goal/g1").respond(200, json=GOAL)
        goal = await client.read("Goal", "g1")
    assert goal == GOAL
    assert route.calls.last.request.headers["Accept"] == "application/fhir+json"


async def test_read_of_an_invalid_resource_is_a_protocol_error(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").respond(200, json={**GOAL, "lifecycleStatus": 42, "bogus": True})
        with pytest.raises(EhrProtocolError, match="not valid FHIR"):
            await client.read(Goal, "g1")


async def test_read_refuses_ids_that_would_change_the_path(client: FhirClient) -> None:
    with pytest.raises(ValueError, match="not a FHIR resource id"):
        await client.read("Goal", "../Patient/1")


async def test_malformed_json_is_a_protocol_error(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").respond(
            200, content=b"{not json", headers={"Content-Type": "application/fhir+json"}
        )
        with pytest.raises(EhrProtocolError, match="not JSON"):
            await client.read("Goal", "g1")


async def test_404_carries_the_remote_operation_outcome(client: FhirClient) -> None:
    outcome = {
        **OUTCOME,
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "gone"}],
    }
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/missing").respond(404, json=outcome)
        with pytest.raises(EhrNotFound) as caught:
            await client.read("Goal", "missing")
    assert caught.value.outcome == outcome
    assert caught.value.remote_status == 404
    assert "gone" in caught.value.detail


async def test_403_is_forbidden_with_its_outcome(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").respond(403, json=OUTCOME)
        with pytest.raises(EhrForbidden) as caught:
            await client.read("Goal", "g1")
    assert caught.value.outcome == OUTCOME


# ---- retries ---------------------------------------------------------------------------------


async def test_429_honours_retry_after_seconds(client: FhirClient, sleeps: RecordedSleeps) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.get("/Goal/g1")
        route.side_effect = [
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(200, json=GOAL),
        ]
        await client.read("Goal", "g1")
    assert route.call_count == 2
    assert sleeps.delays == [2.0]


async def test_429_honours_retry_after_as_http_date(
    client: FhirClient, sleeps: RecordedSleeps
) -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").side_effect = [
            httpx.Response(429, headers={"Retry-After": later}),
            httpx.Response(200, json=GOAL),
        ]
        await client.read("Goal", "g1")
    assert 28 <= sleeps.delays[0] <= 30


async def test_429_until_retries_run_out_is_rate_limited(
    client: FhirClient, sleeps: RecordedSleeps
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.get("/Goal/g1").respond(429, headers={"Retry-After": "1"})
        with pytest.raises(EhrRateLimited) as caught:
            await client.read("Goal", "g1")
    assert route.call_count == 4  # the first try and 3 retries
    assert caught.value.retry_after == 1.0


async def test_a_retry_after_beyond_the_cap_is_left_to_the_caller(
    client: FhirClient, sleeps: RecordedSleeps
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.get("/Goal/g1").respond(503, headers={"Retry-After": "3600"})
        with pytest.raises(EhrServerError):
            await client.read("Goal", "g1")
    assert route.call_count == 1
    assert sleeps.delays == []


async def test_5xx_backs_off_exponentially_then_succeeds(
    client: FhirClient, sleeps: RecordedSleeps
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.get("/Goal/g1")
        route.side_effect = [
            httpx.Response(503),
            httpx.Response(502),
            httpx.Response(200, json=GOAL),
        ]
        assert (await client.read("Goal", "g1"))["id"] == "g1"
    assert route.call_count == 3
    assert sleeps.delays == [0.01, 0.02]


async def test_5xx_until_retries_run_out_raises_server_error(
    client: FhirClient, sleeps: RecordedSleeps
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.get("/Goal/g1").respond(500)
        with pytest.raises(EhrServerError) as caught:
            await client.read("Goal", "g1")
    assert route.call_count == 4
    assert caught.value.remote_status == 500
    assert sleeps.delays == [0.01, 0.02, 0.04]


def test_full_jitter_stays_under_the_exponential_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    assert policy.backoff(0, lambda: 1.0) == 1.0
    assert policy.backoff(5, lambda: 1.0) == 8.0
    assert policy.backoff(5, lambda: 0.25) == 2.0


async def test_timeouts_and_connection_failures_are_retried(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.get("/Goal/g1")
        route.side_effect = [
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=GOAL),
        ]
        await client.read("Goal", "g1")
    assert route.call_count == 3


async def test_persistent_timeouts_raise_a_transient_error(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").side_effect = httpx.ReadTimeout("slow")
        with pytest.raises(EhrTimeout):
            await client.read("Goal", "g1")


async def test_a_plain_post_is_not_resent_after_a_server_error(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.post("/Goal").respond(500)
        with pytest.raises(EhrServerError):
            await client.create({**GOAL, "id": None})
    assert route.call_count == 1  # the server may have created it: resending could duplicate


async def test_a_post_is_resent_when_the_server_cannot_have_acted(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.post("/Goal")
        route.side_effect = [
            httpx.ConnectError("refused"),
            httpx.Response(503),
            httpx.Response(201, json=GOAL),
        ]
        result = await client.create(GOAL)
    assert route.call_count == 3
    assert result.status == 201


async def test_a_post_that_fails_mid_flight_is_not_resent(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.post("/Goal")
        route.side_effect = httpx.ReadError("reset")
        with pytest.raises(EhrConnectionError):
            await client.create(GOAL)
    assert route.call_count == 1


async def test_a_conditional_create_is_safe_to_resend(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.post("/Goal")
        route.side_effect = [httpx.Response(500), httpx.Response(200, json=GOAL)]
        await client.create(GOAL, if_none_exist={"identifier": "urn:x|1"})
    assert route.call_count == 2


async def test_decimals_come_and_go_with_their_digits(client: FhirClient) -> None:
    """FHIR R4 §2.24.0.1: a decimal's precision is significant. `1.50` read from the EHR stays
    `1.50` (a float would make it `1.5`), and writing it back sends the same text."""
    sent = b'{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50,"unit":"mg"}}'
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Observation/o1").respond(200, content=sent)
        put = ehr.put("/Observation/o1").respond(200, content=sent)
        observation = await client.read("Observation", "o1")
        await client.update(observation)
    assert str(observation["valueQuantity"]["value"]) == "1.50"
    assert b'"value":1.50' in put.calls.last.request.content


# ---- auth hook -------------------------------------------------------------------------------


async def test_401_reauthenticates_once_and_retries(sleeps: RecordedSleeps) -> None:
    tokens = FakeTokens()
    async with FhirClient(
        BASE, policy=public_dns_policy(), token_provider=tokens, sleep=sleeps
    ) as fhir:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            route = ehr.get("/Goal/g1")
            route.side_effect = [httpx.Response(401), httpx.Response(200, json=GOAL)]
            await fhir.read("Goal", "g1")
    assert tokens.reauthentications == 1
    sent = [call.request.headers["Authorization"] for call in route.calls]
    assert sent == ["Bearer tok-1", "Bearer tok-2"]


async def test_a_second_401_is_reported_not_retried_forever(sleeps: RecordedSleeps) -> None:
    tokens = FakeTokens()
    async with FhirClient(
        BASE, policy=public_dns_policy(), token_provider=tokens, sleep=sleeps
    ) as fhir:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            route = ehr.get("/Goal/g1").respond(401, json=OUTCOME)
            with pytest.raises(EhrUnauthorized):
                await fhir.read("Goal", "g1")
    assert route.call_count == 2
    assert tokens.reauthentications == 1


# ---- paging ----------------------------------------------------------------------------------


async def test_search_follows_absolute_and_relative_next_links(client: FhirClient) -> None:
    with respx.mock(assert_all_called=True) as ehr:
        first = ehr.get(f"{BASE}/Patient", params={"name": "smith"}).respond(
            200, json=bundle(patient("a"), next_url=f"{BASE}/Patient?page=2")
        )
        ehr.get(f"{BASE}/Patient", params={"page": "2"}).respond(
            200,
            json=bundle(patient("b"), next_url="Patient?page=3"),  # relative to the page URL
        )
        ehr.get(f"{BASE}/Patient", params={"page": "3"}).respond(200, json=bundle(patient("c")))
        ids = [resource["id"] async for resource in client.search("Patient", {"name": "smith"})]
    assert ids == ["a", "b", "c"]
    assert first.call_count == 1


async def test_search_with_a_model_class_yields_typed_resources(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal").respond(200, json=bundle(GOAL))
        goals = [goal async for goal in client.search(Goal, {"patient": "p1"})]
    assert [type(goal) for goal in goals] == [Goal]


async def test_search_skips_included_resources(client: FhirClient) -> None:
    page = bundle(patient("a"))
    page["entry"] = [*page["entry"], {"resource": patient("x"), "search": {"mode": "include"}}]
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Patient").respond(200, json=page)
        ids = [resource["id"] async for resource in client.search("Patient")]
    assert ids == ["a"]


async def test_a_paging_loop_is_detected(client: FhirClient) -> None:
    with respx.mock(assert_all_called=True) as ehr:
        ehr.get(f"{BASE}/Patient", params={"page": "1"}).respond(
            200, json=bundle(patient("a"), next_url=f"{BASE}/Patient?page=2")
        )
        ehr.get(f"{BASE}/Patient", params={"page": "2"}).respond(
            200, json=bundle(patient("b"), next_url=f"{BASE}/Patient?page=1")
        )
        with pytest.raises(EhrProtocolError, match="paging loop"):
            async for _ in client.search("Patient", {"page": "1"}):
                pass


async def test_a_next_link_to_another_origin_is_refused(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Patient").respond(
            200, json=bundle(patient("a"), next_url="https://elsewhere.example/Patient?page=2")
        )
        with pytest.raises(EhrUrlRefused, match="another origin"):
            async for _ in client.search("Patient"):
                pass


async def test_a_search_answer_that_is_not_a_bundle_is_a_protocol_error(
    client: FhirClient,
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Patient").respond(200, json=patient("a"))
        with pytest.raises(EhrProtocolError, match="not a Bundle"):
            async for _ in client.search("Patient"):
                pass


# ---- writes ----------------------------------------------------------------------------------


async def test_conditional_create_sends_if_none_exist_and_reports_the_version(
    client: FhirClient,
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.post("/Goal").respond(
            201,
            json=GOAL,
            headers={"ETag": 'W/"3"', "Location": f"{BASE}/Goal/g1/_history/3"},
        )
        result = await client.create(
            {k: v for k, v in GOAL.items() if k != "id"},
            if_none_exist={"identifier": "urn:casebridge|goal-1"},
        )
    request = route.calls.last.request
    assert request.headers["If-None-Exist"] == "identifier=urn%3Acasebridge%7Cgoal-1"
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert orjson.loads(request.content)["resourceType"] == "Goal"
    assert (result.status, result.etag, result.version_id) == (201, 'W/"3"', "3")
    assert result.location == f"{BASE}/Goal/g1/_history/3"


async def test_update_sends_if_match_and_accepts_an_empty_body(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        route = ehr.put("/Goal/g1").respond(200, headers={"ETag": 'W/"4"'})
        result = await client.update(Goal.model_validate(GOAL), if_match="3")
    assert route.calls.last.request.headers["If-Match"] == 'W/"3"'
    assert result.resource is None
    assert result.version_id == "4"


async def test_update_conflict_is_precondition_failed(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.put("/Goal/g1").respond(412, json=OUTCOME)
        with pytest.raises(EhrPreconditionFailed):
            await client.update(GOAL, if_match='W/"2"')


# ---- redirects and SSRF ----------------------------------------------------------------------


async def test_a_same_origin_redirect_is_followed(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").respond(301, headers={"Location": f"{BASE}/Goal/g1-new"})
        ehr.get("/Goal/g1-new").respond(200, json={**GOAL, "id": "g1-new"})
        goal = await client.read("Goal", "g1")
    assert goal["id"] == "g1-new"


async def test_a_redirect_to_another_host_is_refused(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/Goal/g1").respond(302, headers={"Location": "http://169.254.169.254/latest"})
        with pytest.raises(EhrUrlRefused, match="redirect to another origin"):
            await client.read("Goal", "g1")


async def test_a_base_url_on_a_private_network_is_never_called() -> None:
    async with FhirClient("https://10.0.0.8/fhir", policy=public_dns_policy()) as fhir:
        with respx.mock(assert_all_called=False) as ehr:
            route = ehr.get("https://10.0.0.8/fhir/Goal/g1").respond(200, json=GOAL)
            with pytest.raises(EhrUrlRefused):
                await fhir.read("Goal", "g1")
    assert route.call_count == 0


async def test_an_http_base_url_is_refused_by_default() -> None:
    async with FhirClient("http://ehr.example.com/fhir", policy=public_dns_policy()) as fhir:
        with pytest.raises(EhrUrlRefused, match="only https"):
            await fhir.read("Goal", "g1")


# ---- concurrency -----------------------------------------------------------------------------


async def test_requests_in_flight_are_bounded_per_connection() -> None:
    in_flight = 0
    peak = 0

    async def slow_ehr(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=GOAL)

    async with FhirClient(BASE, policy=public_dns_policy(), max_concurrency=3) as fhir:
        with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
            ehr.get("/Goal/g1").side_effect = slow_ehr
            await asyncio.gather(*(fhir.read("Goal", "g1") for _ in range(20)))
    assert peak == 3


def test_retry_after_parsing() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
