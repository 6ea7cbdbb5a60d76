"""The small conformance points of `/fhir`: no redirects under the base, `_count=0` and
`_summary=count` with the true total, `$validate` declared, RFC 6750 `invalid_token`, 415 on a
body that is not FHIR JSON, and the caps on Bundle entries and included resources."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.case_factory import create_patient, open_case
from tests.fhir_api.conftest import SetScopes
from tests.fhir_api.test_creates_and_deletes import goal
from tests.fhir_api.test_reads import outcome
from tests.fhir_api.test_transactions import discharge_bundle


async def test_the_base_and_paths_with_a_trailing_slash_are_served_not_redirected(
    fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    for url in ("http://testserver/fhir", "http://testserver/fhir/"):
        response = await fhir.post(url, json=discharge_bundle(f"MRN-{url[-1]}"))
        assert response.status_code == 200, response.text
        assert response.json()["type"] == "transaction-response"
    listed = await fhir.get("/CarePlan/")
    assert listed.status_code == 200
    assert listed.json()["total"] == 2
    metadata = await fhir.get("/metadata/")
    assert metadata.status_code == 200
    assert metadata.json()["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize("params", [{"_count": "0"}, {"_summary": "count"}])
async def test_count_zero_gives_the_true_total_and_no_entries(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes, params: dict[str, str]
) -> None:
    for _ in range(3):
        await open_case(client)
    body = (await fhir.get("/CarePlan", params=params)).json()
    assert body["total"] == 3
    assert "entry" not in body


async def test_validate_is_declared(fhir: httpx.AsyncClient) -> None:
    statement = (await fhir.get("/metadata")).json()
    for resource in statement["rest"][0]["resource"]:
        assert {
            "name": "validate",
            "definition": ("http://hl7.org/fhir/OperationDefinition/Resource-validate"),
        } in resource["operation"], resource["type"]


async def test_a_bad_token_is_invalid_token_and_no_token_is_a_plain_challenge(
    anonymous: httpx.AsyncClient,
) -> None:
    bad = await anonymous.get("/fhir/CarePlan", headers={"Authorization": "Bearer not.a.jwt"})
    outcome(bad, 401)
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    none = await anonymous.get("/fhir/CarePlan")
    outcome(none, 401)
    assert none.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/fhir+xml"])
async def test_a_body_that_is_not_fhir_json_is_415(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes, content_type: str
) -> None:
    patient = await create_patient(client)
    response = await fhir.post(
        "/Goal", content=b'{"resourceType": "Goal"}', headers={"Content-Type": content_type}
    )
    body = outcome(response, 415)
    assert body["issue"][0]["code"] == "not-supported"
    assert content_type in body["issue"][0]["diagnostics"]
    accepted = await fhir.post("/Goal", json=goal(patient["id"]))
    assert accepted.status_code != 415


async def test_transactions_are_capped_like_batches(
    app: FastAPI, fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    app.state.database.settings = app.state.database.settings.model_copy(
        update={"fhir_bundle_max_entries": 3}
    )
    bundle = discharge_bundle()
    assert len(bundle["entry"]) > 3
    response = await fhir.post("http://testserver/fhir", json=bundle)
    body = outcome(response, 400)
    assert "at most 3 entries" in body["issue"][0]["diagnostics"]


async def test_included_resources_are_capped_with_a_warning(
    app: FastAPI, fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    for index in range(3):
        response = await fhir.post("http://testserver/fhir", json=discharge_bundle(f"M-{index}"))
        assert response.status_code == 200
    app.state.database.settings = app.state.database.settings.model_copy(
        update={"fhir_include_max": 2}
    )
    body: dict[str, Any] = (await fhir.get("/Goal", params={"_include": "Goal:subject"})).json()
    modes = [e["search"]["mode"] for e in body["entry"]]
    assert modes.count("match") == 3
    assert modes.count("include") == 2
    (warning,) = [e["resource"] for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert warning["issue"][0]["severity"] == "warning"
    assert "1 more" in warning["issue"][0]["diagnostics"]
