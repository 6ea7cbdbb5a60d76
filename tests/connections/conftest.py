"""An app whose SSRF policy sees every host as public (fake DNS), and a respx EHR to discover."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from fastapi import FastAPI

from service.ehr.deps import get_url_policy
from tests.ehr.fakes import BASE, public_dns_policy

TOKEN_URL = "https://auth.example.com/token"
SMART_CONFIGURATION: dict[str, Any] = {
    "token_endpoint": TOKEN_URL,
    "authorization_endpoint": "https://auth.example.com/authorize",
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    "capabilities": ["client-confidential-asymmetric", "launch-ehr", "launch-standalone"],
    "code_challenge_methods_supported": ["S256"],
}
CAPABILITY_STATEMENT: dict[str, Any] = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {
                    "type": "Goal",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [{"name": "patient"}, {"name": "lifecycle-status"}],
                },
                {"type": "Patient", "interaction": [{"code": "read"}]},
            ],
        }
    ],
}


@pytest.fixture(autouse=True)
def fake_public_dns(app: FastAPI) -> Iterator[None]:
    app.dependency_overrides[get_url_policy] = public_dns_policy
    yield
    app.dependency_overrides.pop(get_url_policy, None)


def mock_discovery(
    ehr: respx.MockRouter, smart: dict[str, Any] | None = None, base: str = BASE
) -> None:
    ehr.get(f"{base}/metadata").respond(json=CAPABILITY_STATEMENT)
    ehr.get(f"{base}/.well-known/smart-configuration").respond(
        json=SMART_CONFIGURATION if smart is None else smart
    )


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        mock_discovery(router)
        yield router


def registration(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Example EHR",
        "base_url": BASE + "/",
        "auth_mode": "backend-services",
        "client_id": "casebridge-client",
        "scopes": ["system/Patient.rs", "system/Goal.rs"],
        "signing_alg": "RS384",
    }
    return body | overrides
