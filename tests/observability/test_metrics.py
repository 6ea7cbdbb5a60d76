"""`/metrics`: admins only; requests counted per route template (never the raw path)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from service.ehr.circuit import process_breakers
from tests.api.case_factory import create_patient, ok


async def test_metrics_need_an_admin(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    assert (await anonymous.get("/metrics")).status_code == 401
    issued = ok(await client.post("/api/admin/api-keys", json={"name": "cm"}), 201)
    refused = await anonymous.get("/metrics", headers={"X-API-Key": issued["key"]})
    assert refused.status_code == 403
    allowed = await client.get("/metrics")
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain")


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    patient = await create_patient(client, family_name="Templeton")
    ok(await client.get(f"/api/patients/{patient['id']}"))
    assert (await client.get("/api/patients/no-such-patient")).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404

    text = (await client.get("/metrics")).text
    assert patient["id"] not in text
    assert "no-such-patient" not in text
    counted = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "casebridge_http_requests_total"
    }
    assert counted[("/api/patients/{patient_id}", "GET", "200")] >= 1
    assert counted[("/api/patients/{patient_id}", "GET", "404")] >= 1
    assert counted[("unmatched", "GET", "404")] >= 1
    errors = {
        s.labels["status"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "casebridge_http_errors_total"
    }
    assert errors["404"] >= 2
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "casebridge_http_request_duration_seconds",
        "casebridge_pull_jobs",
        "casebridge_push_conflicts_open",
        "casebridge_identity_conflicts_open",
        "casebridge_audit_pending_records",
        "casebridge_ehr_token_fetches",
        "casebridge_ehr_request_duration_seconds",
    } <= names


async def test_each_connections_circuit_breaker_is_in_the_metrics(
    client: httpx.AsyncClient,
) -> None:
    breaker = process_breakers.for_connection(
        "metrics-breaker", failure_threshold=2, cooldown_seconds=60
    )
    try:
        breaker.record_failure()
        text = (await client.get("/metrics")).text
        assert (
            'casebridge_ehr_circuit_state{connection="metrics-breaker",state="closed"} 1.0' in text
        )
        assert 'casebridge_ehr_circuit_failures{connection="metrics-breaker"} 1.0' in text
        breaker.record_failure()  # the threshold: it opens
        text = (await client.get("/metrics")).text
        assert 'casebridge_ehr_circuit_state{connection="metrics-breaker",state="open"} 1.0' in text
        assert (
            'casebridge_ehr_circuit_state{connection="metrics-breaker",state="closed"} 0.0' in text
        )
    finally:
        process_breakers.forget("metrics-breaker")


async def test_the_in_flight_limit_is_in_the_metrics(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    gate = app.state.in_flight
    gate.control.value = 5.0  # as if the adaptive limit had settled there
    text = (await client.get("/metrics")).text
    gauges = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("casebridge_in_flight_")
    }
    assert gauges["casebridge_in_flight_limit"] == 5
    assert gauges["casebridge_in_flight_waiting"] == 0
    assert "casebridge_in_flight_baseline_seconds" in gauges
