"""The admin API of registered FHIR clients: validation, ETags, admin only, SSRF."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from service.ehr.deps import get_url_policy
from service.ehr.url_policy import UrlPolicy
from tests.api.case_factory import ok
from tests.fhir_auth.support import (
    ES384_KEY,
    JWKS_URL,
    RS384_KEY,
    TOKEN_PATH,
    App,
    jwks,
    oauth_error,
    register,
)

CLIENTS = "/api/admin/fhir-clients"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_register_read_list_and_etag(client: httpx.AsyncClient) -> None:
    response = await client.post(
        CLIENTS,
        json={"name": "Discharge app", "scopes": ["system/CarePlan.rs"], "jwks": jwks(ES384_KEY)},
    )
    created = ok(response, 201)
    assert created["client_id"]  # generated
    assert created["enabled"] is True
    assert created["jwks_url"] is None
    assert response.headers["etag"] == f'W/"{created["version"]}"'
    assert response.headers["location"] == f"{CLIENTS}/{created['client_id']}"
    read = await client.get(f"{CLIENTS}/{created['client_id']}")
    assert ok(read) == created
    assert read.headers["etag"] == response.headers["etag"]
    assert [c["client_id"] for c in ok(await client.get(CLIENTS))] == [created["client_id"]]
    problem(await client.get(f"{CLIENTS}/nobody"), 404)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"scopes": ["system/CarePlan.rs"], "jwks": jwks(ES384_KEY)}, "body.name"),
        ({"name": "x", "scopes": [], "jwks": jwks(ES384_KEY)}, "body.scopes"),
        ({"name": "x", "scopes": ["system/CarePlan.sr"], "jwks": jwks(ES384_KEY)}, "body.scopes"),
        ({"name": "x", "scopes": ["patient/CarePlan.rs"], "jwks": jwks(ES384_KEY)}, "body.scopes"),
        ({"name": "x", "scopes": ["openid"], "jwks": jwks(ES384_KEY)}, "body.scopes"),
        ({"name": "x", "scopes": ["system/CarePlan.rs"]}, "body"),  # no keys
        (
            {
                "name": "x",
                "scopes": ["system/Goal.r"],
                "jwks": jwks(ES384_KEY),
                "jwks_url": JWKS_URL,
            },
            "body",
        ),
        ({"name": "x", "scopes": ["system/Goal.r"], "jwks": {"keys": []}}, "body.jwks"),
        (
            {
                "name": "x",
                "scopes": ["system/Goal.r"],
                "jwks": {"keys": [dict(ES384_KEY.as_dict(private=True))]},
            },
            "body.jwks",
        ),
        ({"name": "x", "scopes": ["system/Goal.r"], "jwks_url": "ftp://x/jwks"}, "body.jwks_url"),
        (
            {"name": "x", "scopes": ["system/Goal.r"], "jwks": jwks(ES384_KEY), "extra": 1},
            "body.extra",
        ),
        (
            {
                "client_id": "bad id!",
                "name": "x",
                "scopes": ["system/Goal.r"],
                "jwks": jwks(ES384_KEY),
            },
            "body.client_id",
        ),
    ],
    ids=[
        "no-name",
        "no-scopes",
        "bad-scope",
        "patient-scope",
        "non-resource-scope",
        "no-keys",
        "both-keys",
        "empty-jwks",
        "private-jwk",
        "bad-url",
        "unknown-field",
        "bad-client-id",
    ],
)
async def test_invalid_registrations_are_problems(
    client: httpx.AsyncClient, body: dict[str, Any], location: str
) -> None:
    found = problem(await client.post(CLIENTS, json=body), 422)
    assert any(e["location"].startswith(location) for e in found["errors"]), found
    assert ok(await client.get(CLIENTS)) == []


async def test_a_jwks_url_on_a_private_network_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def private_dns(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    app.dependency_overrides[get_url_policy] = lambda: UrlPolicy(resolver=private_dns)
    for url in (JWKS_URL, "http://app.example.org/jwks.json", "https://169.254.169.254/jwks"):
        body = {"name": "x", "scopes": ["system/Goal.r"], "jwks_url": url}
        assert (
            "jwks_url is refused" in problem(await client.post(CLIENTS, json=body), 422)["detail"]
        )
    assert ok(await client.get(CLIENTS)) == []


async def test_duplicate_client_ids_are_refused(client: httpx.AsyncClient) -> None:
    await register(client, "app-1")
    body = {
        "client_id": "app-1",
        "name": "again",
        "scopes": ["system/Goal.r"],
        "jwks": jwks(ES384_KEY),
    }
    assert (
        problem(await client.post(CLIENTS, json=body), 409)["rule"]
        == "fhir-client.client_id.unique"
    )


async def test_non_admins_get_403_and_strangers_401(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    issued = ok(await client.post("/api/admin/api-keys", json={"name": "cm"}), 201)
    case_manager = {"X-API-Key": issued["key"]}
    body = {"name": "x", "scopes": ["system/Goal.r"], "jwks": jwks(ES384_KEY)}
    problem(await anonymous.post(CLIENTS, json=body, headers=case_manager), 403)
    problem(await anonymous.get(CLIENTS, headers=case_manager), 403)
    problem(await anonymous.patch(f"{CLIENTS}/x", json={}, headers=case_manager), 403)
    problem(await anonymous.delete(f"{CLIENTS}/x", headers=case_manager), 403)
    problem(await anonymous.get(CLIENTS), 401)


async def test_update_needs_the_current_etag(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    created = await register(client, "app-1", scopes=["system/CarePlan.rs"])
    url = f"{CLIENTS}/app-1"
    problem(await client.patch(url, json={"enabled": False}), 428)
    problem(await client.patch(url, json={"enabled": False}, headers={"If-Match": 'W/"99"'}), 412)
    etag = f'W/"{created["version"]}"'
    changed = await client.patch(
        url, json={"scopes": ["system/CarePlan.cruds"]}, headers={"If-Match": etag}
    )
    body = ok(changed)
    assert body["scopes"] == ["system/CarePlan.cruds"]
    assert changed.headers["etag"] != etag
    # The new allowance takes effect at once.
    app = App("app-1", ES384_KEY, "ES384")
    ok(await anonymous.post(TOKEN_PATH, data=app.form("system/CarePlan.u")))
    # Disabled: no more tokens.
    disabled = await client.patch(
        url, json={"enabled": False}, headers={"If-Match": changed.headers["etag"]}
    )
    assert ok(disabled)["enabled"] is False
    oauth_error(await anonymous.post(TOKEN_PATH, data=app.form()), 401, "invalid_client")
    problem(
        await client.patch(url, json={"scopes": ["system/Goal.xyz"]}, headers={"If-Match": "*"}),
        422,
    )


async def test_switching_between_inline_jwks_and_url(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, jwks_route: respx.Route
) -> None:
    await register(client, "app-1", jwks=jwks(ES384_KEY))
    url = f"{CLIENTS}/app-1"
    body = ok(await client.patch(url, json={"jwks_url": JWKS_URL}, headers={"If-Match": "*"}))
    assert body["jwks_url"] == JWKS_URL
    assert body["jwks"] is None
    ok(await anonymous.post(TOKEN_PATH, data=App("app-1", RS384_KEY, "RS384").form()))
    assert jwks_route.call_count == 1
    body = ok(await client.patch(url, json={"jwks": jwks(RS384_KEY)}, headers={"If-Match": "*"}))
    assert body["jwks_url"] is None
    ok(await anonymous.post(TOKEN_PATH, data=App("app-1", RS384_KEY, "RS384").form()))
    oauth_error(
        await anonymous.post(TOKEN_PATH, data=App("app-1", ES384_KEY, "ES384").form()),
        401,
        "invalid_client",
    )
    both = {"jwks": jwks(RS384_KEY), "jwks_url": JWKS_URL}
    problem(await client.patch(url, json=both, headers={"If-Match": "*"}), 422)


async def test_delete_removes_the_client(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await register(client, "app-1")
    assert (await client.delete(f"{CLIENTS}/app-1")).status_code == 204
    problem(await client.get(f"{CLIENTS}/app-1"), 404)
    problem(await client.delete(f"{CLIENTS}/app-1"), 404)
    oauth_error(
        await anonymous.post(TOKEN_PATH, data=App("app-1", ES384_KEY, "ES384").form()),
        401,
        "invalid_client",
    )
