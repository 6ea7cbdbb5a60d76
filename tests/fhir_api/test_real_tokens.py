"""`/fhir` with real access tokens from `/auth/token` (no overridden principal): a token's
signature is verified once per process, but its expiry is checked on every request."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.api.case_factory import ok, open_case
from tests.fhir_api.test_reads import outcome
from tests.fhir_auth.support import ES384_KEY, TOKEN_PATH, App, register

APP = App("reader-app", ES384_KEY, "ES384")


async def access_token(client: httpx.AsyncClient, scope: str) -> str:
    await register(client, APP.client_id, scopes=["system/CarePlan.rs", "system/Goal.rs"])
    token: str = ok(await client.post(TOKEN_PATH, data=APP.form(scope=scope)))["access_token"]
    return token


async def test_a_real_token_reads_until_it_expires(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = await open_case(client)
    headers = {"Authorization": f"Bearer {await access_token(client, 'system/CarePlan.rs')}"}
    path = f"/fhir/CarePlan/{case['id']}"
    assert (await anonymous.get(path, headers=headers)).status_code == 200
    assert (await anonymous.get(path, headers=headers)).status_code == 200  # cached signature
    outcome(await anonymous.get(f"/fhir/Goal?patient={case['patient_id']}", headers=headers), 403)

    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    expired = await anonymous.get(path, headers=headers)
    outcome(expired, 401)
    assert "expired" in expired.json()["issue"][0]["diagnostics"]


async def test_a_tampered_token_is_refused_even_after_the_real_one_was_cached(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    case = await open_case(client)
    token = await access_token(client, "system/CarePlan.rs")
    path = f"/fhir/CarePlan/{case['id']}"
    assert (
        await anonymous.get(path, headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    outcome(await anonymous.get(path, headers={"Authorization": f"Bearer {tampered}"}), 401)
