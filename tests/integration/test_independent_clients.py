"""Independent FHIR clients (fhirpy, fhirclient) against CaseBridge served over real HTTP on
loopback, with a real SMART Backend Services token from our own token endpoint."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhirclient.models.careplan import CarePlan as FhirclientCarePlan
from fhirclient.server import FHIRServer
from fhirpy import AsyncFHIRClient
from joserfc import jwt
from joserfc.jwk import ECKey

from service.db.session import Database
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY
from tests.fhir_api.test_transactions import discharge_bundle
from tests.integration.casebridge_server import casebridge_server

pytestmark = pytest.mark.integration

KEY = ECKey.generate_key("P-384", parameters={"kid": "planner-1"})
SCOPES = " ".join(
    f"system/{t}.cruds"
    for t in ("CarePlan", "Goal", "ServiceRequest", "Condition", "CareTeam", "Patient")
)


@pytest.fixture
def server(settings: Settings, database: Database, tmp_path: Path) -> Iterator[str]:
    assert settings.encryption_key is not None
    with casebridge_server(
        settings.database_url,
        settings.encryption_key.get_secret_value(),
        BOOTSTRAP_KEY,
        tmp_path / "casebridge.log",
    ) as base_url:
        yield base_url


async def access_token(http: httpx.AsyncClient, base_url: str) -> str:
    """Register a discharge-planning app with its JWKS, then run client_credentials."""
    client_id = f"planner-{uuid.uuid4().hex[:8]}"
    registered = await http.post(
        "/api/admin/fhir-clients",
        headers={"X-API-Key": BOOTSTRAP_KEY},
        json={
            "client_id": client_id,
            "name": "Discharge planner",
            "scopes": SCOPES.split(),
            "jwks": {"keys": [dict(KEY.as_dict(private=False))]},
        },
    )
    assert registered.status_code == 201, registered.text
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES384", "kid": KEY.kid, "typ": "JWT"},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{base_url}/auth/token",
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
        },
        KEY,
        algorithms=["ES384"],
    )
    response = await http.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": SCOPES,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def open_case(http: httpx.AsyncClient) -> dict[str, Any]:
    headers = {"X-API-Key": BOOTSTRAP_KEY}
    patient = (
        await http.post(
            "/api/patients", headers=headers, json={"given_name": "Ada", "family_name": "Byron"}
        )
    ).json()
    case: dict[str, Any] = (
        await http.post(
            "/api/cases",
            headers=headers,
            json={"patient_id": patient["id"], "program": "geriatric"},
        )
    ).json()
    return case


class BearerAuth:
    """fhirclient's hook for signing requests: ours adds the access token."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.ready = True

    def can_sign_headers(self) -> bool:
        return True

    def signed_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return headers | {"Authorization": f"Bearer {self.token}"}


async def test_fhirpy_and_fhirclient_search_read_and_transact(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        token = await access_token(http, server)
        case = await open_case(http)

    fhirpy = AsyncFHIRClient(f"{server}/fhir", authorization=f"Bearer {token}")
    found = await fhirpy.resources("CarePlan").search(patient=case["patient_id"]).fetch()
    assert [plan["id"] for plan in found] == [case["id"]]
    plan = await fhirpy.reference("CarePlan", case["id"]).to_resource()
    assert plan["subject"]["reference"] == f"Patient/{case['patient_id']}"

    fhir_server = FHIRServer(None, base_uri=f"{server}/fhir/")
    fhir_server.auth = BearerAuth(token)
    read = await asyncio.to_thread(FhirclientCarePlan.read, case["id"], fhir_server)
    assert read.id == case["id"]
    assert read.subject.reference == f"Patient/{case['patient_id']}"
    search = FhirclientCarePlan.where(struct={"patient": case["patient_id"]})
    plans = await asyncio.to_thread(lambda: list(search.perform_resources_iter(fhir_server)))
    assert [p.id for p in plans] == [case["id"]]

    response = await fhirpy.execute("", method="post", data=discharge_bundle())
    assert response["type"] == "transaction-response"
    location = next(
        e["response"]["location"]
        for e in response["entry"]
        if "CarePlan/" in e["response"]["location"]
    )
    created = await fhirpy.reference("CarePlan", location.split("/")[1]).to_resource()
    assert created["title"] == "Discharge to home after hip replacement"
    goals = await fhirpy.resources("Goal").search(patient=created["subject"]["reference"]).fetch()
    assert len(goals) == 1
