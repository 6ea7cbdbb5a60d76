"""No token, key or patient data in the logs: representative calls (names, birth dates and MRNs
in paths, queries and bodies; /fhir with bearer tokens; token requests with client assertions;
refusals) run with every logger at DEBUG, through the JSON log format `casebridge serve` uses,
and the captured lines are searched for each secret and each patient detail sent."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from service.observability.logs import (
    QUIET_LIBRARIES,
    RequestIdFilter,
    json_formatter,
    suppress_uvicorn_access_log,
)
from tests.api.case_factory import ok
from tests.fhir_auth.support import ES384_KEY, RS384_KEY, TOKEN_PATH, App, register

GIVEN, FAMILY, BIRTH_DATE = "Philomena", "Quackenbush", "1931-02-29"
MRN_SYSTEM, MRN = "urn:oid:2.16.840.1.113883.19.5", "MRN-7731-QX"
OTHER_MRN = "MRN-9902-ZZ"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record, from every logger, at DEBUG, as the JSON lines production writes (with
    the same libraries held at WARNING)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


async def test_logs_carry_no_tokens_keys_or_patient_data(
    app: FastAPI,
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    captured: io.StringIO,
) -> None:
    suppress_uvicorn_access_log()
    sent_secrets: list[str] = []

    # /api: patient data in bodies, queries and paths.
    patient = ok(
        await client.post(
            "/api/patients",
            json={
                "given_name": GIVEN,
                "family_name": FAMILY,
                "birth_date": "1931-02-28",
                "identifiers": [{"system": MRN_SYSTEM, "value": MRN}],
            },
        ),
        201,
    )
    ok(
        await client.get(
            "/api/patients",
            params={"family_name": FAMILY, "identifier": f"{MRN_SYSTEM}|{MRN}"},
        )
    )
    ok(await client.get(f"/api/patients/{patient['id']}"))
    # An invalid birth date (1931 was no leap year) and a bad identifier are refused.
    refused = await client.post(
        "/api/patients", json={"family_name": FAMILY, "birth_date": BIRTH_DATE}
    )
    assert refused.status_code == 422
    assert (await client.get("/api/patients", params={"identifier": OTHER_MRN})).status_code == 400
    assert (await client.get(f"/api/patients/{OTHER_MRN}")).status_code == 404
    ok(
        await client.post("/api/cases", json={"patient_id": patient["id"], "program": "nursing"}),
        201,
    )

    # Token requests with client assertions, good and bad.
    await register(client, "app-1", scopes=["system/*.rs"])
    app_1 = App("app-1", ES384_KEY, "ES384")
    good_assertion = app_1.assertion()
    sent_secrets.append(good_assertion)
    token = ok(
        await anonymous.post(
            TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": good_assertion,
                "scope": "system/*.rs",
            },
        )
    )["access_token"]
    sent_secrets.append(token)
    wrong_audience = App("app-1", RS384_KEY, "RS384").assertion(aud="https://elsewhere.example")
    sent_secrets.append(wrong_audience)
    assert (
        await anonymous.post(
            TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": wrong_audience,
            },
        )
    ).status_code in (400, 401)

    # /fhir with the bearer token; identifiers and names in queries and paths.
    bearer = {"Authorization": f"Bearer {token}"}
    ok(
        await anonymous.get(
            "/fhir/Patient", params={"identifier": f"{MRN_SYSTEM}|{MRN}"}, headers=bearer
        )
    )
    ok(
        await anonymous.get(
            "/fhir/Patient", params={"family": FAMILY, "birthdate": "1931-02-28"}, headers=bearer
        )
    )
    ok(await anonymous.get(f"/fhir/Patient/{patient['id']}", headers=bearer))
    assert (await anonymous.get(f"/fhir/Patient/{OTHER_MRN}", headers=bearer)).status_code == 404
    forged = token[:-6] + "AAAAAA"
    sent_secrets.append(forged)
    assert (
        await anonymous.get("/fhir/Patient", headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401

    lines = [line for line in captured.getvalue().splitlines() if line]
    assert lines, "nothing was logged: the capture is not working"
    records = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message", "request_id"} <= set(records[0])
    access = [r for r in records if r["logger"] == "casebridge.access"]
    assert any(r["route"] == "/fhir/Patient/{resource_id}" for r in access) or any(
        "{" in r["route"] for r in access
    )
    assert all(r["request_id"] for r in access)
    text = captured.getvalue()
    for secret in sent_secrets:
        assert secret not in text
    assert not JWT.search(text)
    assert "Bearer " not in text
    for detail in (GIVEN, FAMILY, BIRTH_DATE, "1931-02-28", MRN, OTHER_MRN, MRN_SYSTEM):
        assert detail not in text, detail


async def test_uvicorns_access_lines_are_dropped_where_the_app_writes_its_own(
    captured: io.StringIO,
) -> None:
    suppress_uvicorn_access_log()
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/api/patients?family_name={FAMILY}",
        "1.1",
        200,
    )
    assert FAMILY not in captured.getvalue()
