"""Fixtures for `/fhir`: a caller with chosen SMART scopes, and a case built through `/api`.

The scopes are set by overriding the token check (the token endpoint and token verification
have their own tests in tests/fhir_auth); everything after it is the real code path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.fhir_auth.principal import FhirPrincipal, authenticate_fhir
from service.fhir_auth.scopes import parse_scopes
from tests.api.case_factory import active_case, ok

SetScopes = Callable[..., None]


@pytest.fixture
async def fhir(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver/fhir",
        headers={"Authorization": "Bearer overridden-in-tests"},
    ) as http:
        yield http


@pytest.fixture
def scopes(app: FastAPI) -> SetScopes:
    """`scopes("system/*.rs")` or `scopes("patient/*.rs", patient="<id>")`."""

    def grant(text: str, patient: str | None = None) -> None:
        principal = FhirPrincipal("test-client", parse_scopes(text, strict=True), patient)
        app.dependency_overrides[authenticate_fhir] = lambda: principal

    grant("system/*.cruds")
    return grant


async def planned_case(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """An active case with a need, a goal due 2027-03-01, and a referral."""
    case = await active_case(client, **fields)
    base = f"/api/cases/{case['id']}"
    ok(
        await client.post(
            f"{base}/assessments",
            json={
                "kind": "initial",
                "needs": [
                    {"domain": "housing", "description": "Facing eviction", "severity": "severe"}
                ],
            },
        ),
        201,
    )
    need = ok(await client.get(f"{base}/needs"))["items"][0]
    goal = ok(
        await client.post(
            f"{base}/goals",
            json={
                "description": "Stable housing",
                "need_ids": [need["id"]],
                "lifecycle_status": "active",
                "target": {"detail_text": "lease signed", "due_date": "2027-03-01"},
            },
        ),
        201,
    )
    referral = ok(
        await client.post(
            f"{base}/interventions",
            json={
                "kind": "referral",
                "type": "housing_assistance",
                "status": "active",
                "performer": {"kind": "organization", "name": "City Housing Authority"},
                "goal_ids": [goal["id"]],
                "need_ids": [need["id"]],
            },
        ),
        201,
    )
    return {"case": case, "need": need, "goal": goal, "referral": referral}
