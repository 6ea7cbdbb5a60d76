"""Each request to an EHR is timed and, when it fails, counted per connection."""

from __future__ import annotations

import httpx
import respx
from prometheus_client import REGISTRY

from service.ehr.client import FhirClient, RetryPolicy
from tests.ehr.fakes import BASE, public_dns_policy


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def no_sleep(_seconds: float) -> None:
    return None


async def test_requests_and_failures_are_counted_per_connection() -> None:
    calls = {"connection": "conn-metrics", "method": "GET"}
    calls_before = sample("casebridge_ehr_request_duration_seconds_count", calls)
    unavailable = {"connection": "conn-metrics", "error": "503"}
    timeouts = {"connection": "conn-metrics", "error": "timeout"}
    unavailable_before = sample("casebridge_ehr_request_errors_total", unavailable)
    timeouts_before = sample("casebridge_ehr_request_errors_total", timeouts)
    async with FhirClient(
        BASE,
        policy=public_dns_policy(),
        retry=RetryPolicy(max_retries=3, base_delay=0.01),
        sleep=no_sleep,
        metrics_label="conn-metrics",
    ) as fhir:
        with respx.mock(assert_all_called=True) as router:
            router.get(f"{BASE}/Patient/p1").mock(
                side_effect=[
                    httpx.Response(503),
                    httpx.ReadTimeout("slow"),
                    httpx.Response(200, json={"resourceType": "Patient", "id": "p1"}),
                ]
            )
            assert (await fhir.read("Patient", "p1"))["id"] == "p1"
    assert sample("casebridge_ehr_request_duration_seconds_count", calls) - calls_before == 3
    assert sample("casebridge_ehr_request_errors_total", unavailable) - unavailable_before == 1
    assert sample("casebridge_ehr_request_errors_total", timeouts) - timeouts_before == 1
