"""Admin API of the connection registry, against a respx EHR and a real database."""

from __future__ import annotations

import httpx
import respx
from fastapi import FastAPI
from sqlalchemy import select

from service.connections.models import ConnectionKey
from service.db.session import Database
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens
from tests.connections.conftest import (
    SMART_CONFIGURATION,
    TOKEN_URL,
    mock_discovery,
    registration,
)
from tests.ehr.fakes import BASE, public_dns_policy

OTHER_BASE = "https://other-ehr.example.com/r4"


async def _register(client: httpx.AsyncClient, **overrides: object) -> httpx.Response:
    response = await client.post("/api/admin/connections", json=registration(**overrides))
    assert response.status_code == 201, response.text
    return response


async def test_registration_discovers_and_stores_capabilities(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    response = await _register(client)
    body = response.json()
    assert response.headers["ETag"] == f'W/"{body["version"]}"'
    assert response.headers["Location"] == f"/api/admin/connections/{body['id']}"
    assert body["base_url"] == BASE  # trailing slash removed: `iss` matches by equality
    capabilities = body["capabilities"]
    assert capabilities["fhir_version"] == "4.0.1"
    assert capabilities["smart"]["token_endpoint"] == TOKEN_URL
    assert capabilities["resources"]["Goal"]["interactions"] == ["read", "search-type"]
    assert capabilities["resources"]["Goal"]["search_params"] == ["patient", "lifecycle-status"]
    assert body["discovered_at"] is not None
    [key] = body["keys"]
    assert key["alg"] == "RS384"
    assert key["retire_after"] is None
    assert body["jwks_url"] == f"http://testserver/smart/connections/{body['id']}/jwks.json"
    assert ehr.calls.call_count == 2


async def test_private_keys_are_encrypted_at_rest_and_never_returned(
    client: httpx.AsyncClient, ehr: respx.MockRouter, database: Database
) -> None:
    response = await _register(client, signing_alg="ES384")
    assert "PRIVATE" not in response.text
    assert '"d"' not in response.text
    async with database.transaction(write=False) as session:
        row = await session.scalar(select(ConnectionKey))
    assert row is not None
    assert b"PRIVATE KEY" not in row.encrypted_private_pem
    assert "d" not in row.public_jwk
    settings = database.settings
    assert settings.encryption_key is not None
    pem = SecretBox(settings.encryption_key.get_secret_value()).decrypt(row.encrypted_private_pem)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")


async def test_http_base_url_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    response = await client.post(
        "/api/admin/connections", json=registration(base_url="http://ehr.example.com/fhir")
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/ehr-url-refused")
    assert ehr.calls.call_count == 0
    assert (await client.get("/api/admin/connections")).json()["items"] == []


async def test_a_discovered_endpoint_on_a_private_address_is_refused(
    client: httpx.AsyncClient,
) -> None:
    with respx.mock(assert_all_called=True) as ehr:
        mock_discovery(ehr, smart=SMART_CONFIGURATION | {"token_endpoint": "https://10.0.0.7/t"})
        response = await client.post("/api/admin/connections", json=registration())
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/ehr-url-refused")
    assert "token_endpoint" in problem["detail"]
    assert (await client.get("/api/admin/connections")).json()["items"] == []


async def test_an_ehr_without_oauth_endpoints_cannot_be_registered_for_backend_services(
    client: httpx.AsyncClient,
) -> None:
    with respx.mock(assert_all_called=True) as ehr:
        ehr.get(f"{BASE}/metadata").respond(json={"resourceType": "CapabilityStatement"})
        ehr.get(f"{BASE}/.well-known/smart-configuration").respond(404)
        refused = await client.post("/api/admin/connections", json=registration())
        open_sandbox = await client.post(
            "/api/admin/connections",
            json=registration(auth_mode="none", client_id=None, name="Open sandbox"),
        )
    assert refused.status_code == 502
    assert refused.json()["type"].endswith("/ehr-discovery-failed")
    assert open_sandbox.status_code == 201, open_sandbox.text
    assert open_sandbox.json()["capabilities"]["smart"] is None


async def test_app_launch_needs_an_authorization_endpoint(client: httpx.AsyncClient) -> None:
    smart = {k: v for k, v in SMART_CONFIGURATION.items() if k != "authorization_endpoint"}
    with respx.mock(assert_all_called=True) as ehr:
        mock_discovery(ehr, smart=smart)
        response = await client.post(
            "/api/admin/connections", json=registration(auth_mode="app-launch")
        )
    assert response.status_code == 502
    assert "authorization_endpoint" in response.json()["detail"]


async def test_client_id_is_required_unless_the_ehr_is_open(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/admin/connections", json=registration(client_id=None))
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"].endswith("backend-services")


async def test_names_are_unique(client: httpx.AsyncClient, ehr: respx.MockRouter) -> None:
    await _register(client)
    again = await client.post("/api/admin/connections", json=registration())
    assert again.status_code == 409
    assert again.json()["rule"] == "connection.name.unique"


async def test_list_read_and_unknown(client: httpx.AsyncClient, ehr: respx.MockRouter) -> None:
    first = (await _register(client)).json()
    second = (await _register(client, name="Second")).json()
    page = (await client.get("/api/admin/connections", params={"limit": 1})).json()
    assert [item["id"] for item in page["items"]] == [first["id"]]
    rest = (
        await client.get("/api/admin/connections", params={"cursor": page["next_cursor"]})
    ).json()
    assert [item["id"] for item in rest["items"]] == [second["id"]]
    read = await client.get(f"/api/admin/connections/{first['id']}")
    assert read.json()["name"] == "Example EHR"
    assert read.headers["ETag"] == f'W/"{first["version"]}"'
    missing = await client.get("/api/admin/connections/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_update_needs_the_current_etag(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = (await _register(client)).json()
    url = f"/api/admin/connections/{created['id']}"
    change = {"scopes": ["system/Patient.rs"]}
    assert (await client.patch(url, json=change)).status_code == 428
    stale = await client.patch(url, json=change, headers={"If-Match": 'W/"999"'})
    assert stale.status_code == 412
    updated = await client.patch(
        url, json=change, headers={"If-Match": f'W/"{created["version"]}"'}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["scopes"] == ["system/Patient.rs"]
    assert updated.json()["version"] == created["version"] + 1
    assert ehr.calls.call_count == 2  # no base_url change: no re-discovery


async def test_a_new_base_url_is_discovered_before_it_is_stored(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = (await _register(client)).json()
    url = f"/api/admin/connections/{created['id']}"
    etag = {"If-Match": f'W/"{created["version"]}"'}
    ehr.get(f"{OTHER_BASE}/metadata").respond(404)
    ehr.get(f"{OTHER_BASE}/.well-known/smart-configuration").respond(404)
    failed = await client.patch(url, json={"base_url": OTHER_BASE}, headers=etag)
    assert failed.status_code == 502
    assert failed.json()["type"].endswith("/ehr-discovery-failed")
    assert (await client.get(url)).json()["base_url"] == BASE
    mock_discovery(ehr, base=OTHER_BASE)
    moved = await client.patch(url, json={"base_url": OTHER_BASE}, headers=etag)
    assert moved.status_code == 200, moved.text
    assert moved.json()["base_url"] == OTHER_BASE


async def test_delete(client: httpx.AsyncClient, ehr: respx.MockRouter) -> None:
    created = (await _register(client)).json()
    url = f"/api/admin/connections/{created['id']}"
    assert (await client.delete(url)).status_code == 428
    deleted = await client.delete(url, headers={"If-Match": f'W/"{created["version"]}"'})
    assert deleted.status_code == 204
    assert (await client.get(url)).status_code == 404


async def test_rotation_keeps_the_previous_key_until_its_retirement(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = (await _register(client)).json()
    url = f"/api/admin/connections/{created['id']}/keys/rotate"
    assert (await client.post(url)).status_code == 428
    rotated = await client.post(
        url, json={"signing_alg": "ES384"}, headers={"If-Match": f'W/"{created["version"]}"'}
    )
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["version"] == created["version"] + 1
    assert body["signing_alg"] == "ES384"
    old, new = body["keys"]
    assert old["kid"] == created["keys"][0]["kid"]
    assert old["retire_after"] is not None
    assert (new["alg"], new["retire_after"]) == ("ES384", None)
    assert new["kid"] != old["kid"]


async def test_discovery_on_demand_stores_what_the_ehr_says_now(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = (await _register(client)).json()
    ehr.get(f"{BASE}/metadata").respond(
        json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": []}
    )
    response = await client.post(f"/api/admin/connections/{created['id']}/discover")
    assert response.status_code == 200, response.text
    assert response.json()["capabilities"]["resources"] == {}
    assert response.json()["version"] == created["version"] + 1


async def test_only_admins_manage_connections(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    issued = await client.post(
        "/api/admin/api-keys", json={"name": "planner", "role": "case_manager"}
    )
    assert issued.status_code == 201, issued.text
    as_manager = await anonymous.get(
        "/api/admin/connections", headers={"X-API-Key": issued.json()["key"]}
    )
    assert as_manager.status_code == 403
    assert (await anonymous.get("/api/admin/connections")).status_code == 401


class ForgetfulTokens(BackendServicesTokens):
    def __init__(self) -> None:
        super().__init__(policy=public_dns_policy())
        self.forgotten: list[str] = []

    def forget(self, connection_id: str) -> None:
        self.forgotten.append(connection_id)
        super().forget(connection_id)


async def test_changes_and_deletion_drop_cached_tokens(
    app: FastAPI, client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    tokens = ForgetfulTokens()
    app.state.backend_tokens = tokens
    created = (await _register(client)).json()
    url = f"/api/admin/connections/{created['id']}"
    assert tokens.forgotten == []
    updated = await client.patch(
        url, json={"client_id": "new-client"}, headers={"If-Match": f'W/"{created["version"]}"'}
    )
    assert updated.status_code == 200
    assert tokens.forgotten == [created["id"]]
    deleted = await client.delete(url, headers={"If-Match": f'W/"{updated.json()["version"]}"'})
    assert deleted.status_code == 204
    assert tokens.forgotten == [created["id"], created["id"]]


async def test_token_check_reports_what_the_ehr_granted_never_the_token(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = (await _register(client, signing_alg="ES384")).json()
    ehr.post(TOKEN_URL).respond(
        json={
            "access_token": "secret-token",
            "token_type": "bearer",
            "expires_in": 300,
            "scope": "system/Patient.rs",
        }
    )
    response = await client.post(f"/api/admin/connections/{created['id']}/token-check")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["granted_scope"] == "system/Patient.rs"
    assert (body["kid"], body["alg"]) == (created["keys"][0]["kid"], "ES384")
    assert body["token_endpoint"] == TOKEN_URL
    assert "secret-token" not in response.text


async def test_token_check_surfaces_the_oauth_error(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = (await _register(client)).json()
    ehr.post(TOKEN_URL).respond(
        400, json={"error": "invalid_scope", "error_description": "system/Goal.rs not allowed"}
    )
    response = await client.post(f"/api/admin/connections/{created['id']}/token-check")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/ehr-authorization-failed")
    assert problem["error"] == "invalid_scope"
    assert problem["error_description"] == "system/Goal.rs not allowed"
    assert problem["url"] == TOKEN_URL


async def test_token_check_needs_a_backend_services_connection(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    created = (await _register(client, auth_mode="app-launch")).json()
    response = await client.post(f"/api/admin/connections/{created['id']}/token-check")
    assert response.status_code == 409
    assert response.json()["rule"] == "connection.auth_mode"


async def test_the_document_fallback_is_set_per_connection_or_follows_the_default(
    client: httpx.AsyncClient, ehr: respx.MockRouter
) -> None:
    default = (await _register(client)).json()
    assert default["document_fallback"] is None  # the global setting applies
    own = (await _register(client, name="Other EHR", document_fallback=True)).json()
    assert own["document_fallback"] is True
    url = f"/api/admin/connections/{own['id']}"

    async def patch(change: dict[str, object]) -> dict[str, object]:
        current = (await client.get(url)).json()
        response = await client.patch(
            url, json=change, headers={"If-Match": f'W/"{current["version"]}"'}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert (await patch({"document_fallback": False}))["document_fallback"] is False
    assert (await patch({"name": "Renamed EHR"}))["document_fallback"] is False  # left alone
    assert (await patch({"document_fallback": None}))["document_fallback"] is None
    assert (await client.get(url)).json()["document_fallback"] is None
