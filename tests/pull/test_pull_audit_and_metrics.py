"""A finished pull leaves an Import AuditEvent (who started it, the connection, the patients),
and `/metrics` shows the EHR calls it made and the jobs by state."""

from __future__ import annotations

import httpx
import respx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.api.case_factory import ok
from tests.pull.test_pull_api import CONDITION, MRN, bundle, pull, remote_patient, serve_record


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_a_pull_is_audited_and_counted(
    app: FastAPI, client: httpx.AsyncClient, ehr: respx.MockRouter, connection_id: str
) -> None:
    before = (await client.get("/metrics")).text
    calls_before = sum(
        v
        for labels, v in samples(before, "casebridge_ehr_request_duration_seconds_count").items()
        if ("connection", connection_id) in labels
    )
    serve_record(ehr, remote_patient(MRN), Condition=bundle(CONDITION))
    job = await pull(app, client, connection_id)
    assert job["state"] == "succeeded", job["failures"]

    trail = ok(await client.get("/api/admin/audit-events"))["items"]
    [event] = [e for e in trail if e["type"]["code"] == "110107"]
    assert event["type"]["code"] == "110107"  # DICOM Import
    assert event["action"] == "C"
    requestor, source = event["agent"]
    assert requestor["who"]["identifier"]["value"] == "apikey:bootstrap"
    assert source["who"]["identifier"]["value"] == f"connection:{connection_id}"
    patients = [e["what"]["reference"] for e in event["entity"] if "reference" in e["what"]]
    (local_patient,) = patients
    assert local_patient.startswith("Patient/")
    by_patient = ok(
        await client.get(
            "/api/admin/audit-events", params={"patient": local_patient.removeprefix("Patient/")}
        )
    )["items"]
    assert [e["id"] for e in by_patient] == [event["id"]]

    after = (await client.get("/metrics")).text
    calls_after = sum(
        v
        for labels, v in samples(after, "casebridge_ehr_request_duration_seconds_count").items()
        if ("connection", connection_id) in labels
    )
    # Patient read plus one search per record type, at least.
    assert calls_after - calls_before >= 2
    jobs = samples(after, "casebridge_pull_jobs")
    assert jobs[(("state", "succeeded"),)] == 1
    assert jobs[(("state", "running"),)] == 0
    routes = samples(after, "casebridge_http_requests_total")
    assert any(
        dict(labels).get("route") == "/api/connections/{connection_id}/pulls" for labels in routes
    )
