from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx

from service.ehr.client import FhirClient
from service.ehr.discovery import OAUTH_URIS_EXTENSION, Capabilities, discover
from service.ehr.errors import EhrDiscoveryError, EhrUrlRefused
from tests.ehr.fakes import BASE, public_dns_policy

SMART_CONFIGURATION = {
    "issuer": "https://auth.example.com",
    "token_endpoint": "https://auth.example.com/token",
    "authorization_endpoint": "https://auth.example.com/authorize",
    "jwks_uri": "https://auth.example.com/jwks",
    "capabilities": ["client-confidential-asymmetric", "launch-ehr", 7],
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    "code_challenge_methods_supported": ["S256"],
    "unknown_vendor_field": {"nested": True},
}


def capability_statement(*, oauth_token_uri: str | None = None) -> dict[str, Any]:
    security: dict[str, Any] = {}
    if oauth_token_uri:
        security["extension"] = [
            {
                "url": OAUTH_URIS_EXTENSION,
                "extension": [
                    {"url": "token", "valueUri": oauth_token_uri},
                    {"url": "authorize", "valueUri": "https://auth.example.com/authorize"},
                ],
            }
        ]
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [
            {
                "mode": "server",
                "security": security,
                "interaction": [{"code": "transaction"}, {"code": "history-system"}],
                "resource": [
                    {
                        "type": "Goal",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [{"name": "patient", "type": "reference"}],
                    },
                    {
                        "type": "CarePlan",
                        "interaction": [{"code": "read"}, {"code": "create"}, {"code": "update"}],
                        "conditionalCreate": True,
                        "conditionalUpdate": True,
                        "updateCreate": True,
                    },
                ],
            }
        ],
    }


@pytest.fixture
async def client() -> AsyncIterator[FhirClient]:
    async with FhirClient(BASE, policy=public_dns_policy()) as fhir:
        yield fhir


async def test_smart_configuration_and_metadata_are_combined(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/.well-known/smart-configuration").respond(200, json=SMART_CONFIGURATION)
        ehr.get("/metadata").respond(200, json=capability_statement())
        capabilities = await discover(client, public_dns_policy())

    assert capabilities.smart is not None
    assert capabilities.smart.source == "smart-configuration"
    assert capabilities.smart.token_endpoint == "https://auth.example.com/token"
    assert capabilities.smart.capabilities == ["client-confidential-asymmetric", "launch-ehr"]
    assert capabilities.fhir_version == "4.0.1"
    assert capabilities.supports("Goal", "read")
    assert not capabilities.supports("Goal", "update")
    assert capabilities.supports("CarePlan", "update")
    assert not capabilities.supports("Patient", "read")
    assert capabilities.supports_search_param("Goal", "patient")
    assert capabilities.supports_conditional_create("CarePlan")
    assert capabilities.supports_conditional_update("CarePlan")
    assert not capabilities.supports_conditional_create("Goal")
    assert capabilities.supports_update_create("CarePlan")
    assert not capabilities.supports_update_create("Goal")
    assert capabilities.supports_transaction
    assert not capabilities.supports_batch


async def test_capabilities_round_trip_through_json(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/.well-known/smart-configuration").respond(200, json=SMART_CONFIGURATION)
        ehr.get("/metadata").respond(200, json=capability_statement())
        capabilities = await discover(client, public_dns_policy())
    stored = capabilities.model_dump_json()
    assert Capabilities.model_validate_json(stored) == capabilities


async def test_missing_smart_configuration_falls_back_to_oauth_uris(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/.well-known/smart-configuration").respond(404)
        ehr.get("/metadata").respond(
            200, json=capability_statement(oauth_token_uri="https://auth.example.com/old-token")
        )
        capabilities = await discover(client, public_dns_policy())
    assert capabilities.smart is not None
    assert capabilities.smart.source == "capability-statement"
    assert capabilities.smart.token_endpoint == "https://auth.example.com/old-token"
    assert capabilities.smart.authorization_endpoint == "https://auth.example.com/authorize"


async def test_neither_source_is_a_clear_error(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/.well-known/smart-configuration").respond(404)
        ehr.get("/metadata").respond(200, json=capability_statement())
        with pytest.raises(EhrDiscoveryError, match=r"neither \.well-known/smart-configuration"):
            await discover(client, public_dns_policy())


async def test_an_open_server_needs_no_oauth_endpoints(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/.well-known/smart-configuration").respond(404)
        ehr.get("/metadata").respond(200, json=capability_statement())
        capabilities = await discover(client, public_dns_policy(), require_oauth=False)
    assert capabilities.smart is None
    assert capabilities.supports("Goal", "read")


async def test_metadata_that_is_not_a_capability_statement_is_an_error(
    client: FhirClient,
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as ehr:
        ehr.get("/metadata").respond(200, json={"resourceType": "Patient"})
        with pytest.raises(EhrDiscoveryError, match="not a CapabilityStatement"):
            await discover(client, public_dns_policy())


@pytest.mark.parametrize(
    "token_endpoint",
    ["http://auth.example.com/token", "https://169.254.169.254/token", "https://[::1]/token"],
)
async def test_discovered_endpoints_must_pass_the_ssrf_policy(
    client: FhirClient, token_endpoint: str
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/.well-known/smart-configuration").respond(
            200, json={**SMART_CONFIGURATION, "token_endpoint": token_endpoint}
        )
        ehr.get("/metadata").respond(200, json=capability_statement())
        with pytest.raises(EhrUrlRefused, match="discovered token_endpoint"):
            await discover(client, public_dns_policy())


async def test_oauth_uris_endpoints_must_pass_the_ssrf_policy(client: FhirClient) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as ehr:
        ehr.get("/.well-known/smart-configuration").respond(404)
        ehr.get("/metadata").respond(
            200, json=capability_statement(oauth_token_uri="https://10.0.0.1/token")
        )
        with pytest.raises(EhrUrlRefused):
            await discover(client, public_dns_policy())
