"""Builds patients and cases through the API, the way a client would."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_mrn = itertools.count(1000)


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body, after checking the status (the body is shown when it is wrong)."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json()


async def create_patient(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {
        "given_name": "Ada",
        "family_name": "Lovelace",
        "birth_date": "1948-12-10",
        "gender": "female",
        "identifiers": [{"system": "urn:oid:1.2.3.4", "value": f"MRN{next(_mrn)}"}],
    } | fields
    patient: dict[str, Any] = ok(await client.post("/api/patients", json=body), 201)
    return patient


async def open_case(
    client: httpx.AsyncClient, patient_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    if patient_id is None:
        patient_id = (await create_patient(client))["id"]
    body = {"patient_id": patient_id, "program": "nursing", "manager": "cm.jones"} | fields
    case: dict[str, Any] = ok(await client.post("/api/cases", json=body), 201)
    return case


async def patch_case(
    client: httpx.AsyncClient, case: dict[str, Any], **fields: Any
) -> httpx.Response:
    return await client.patch(
        f"/api/cases/{case['id']}", json=fields, headers={"If-Match": f'W/"{case["version"]}"'}
    )


async def move_case(
    client: httpx.AsyncClient, case: dict[str, Any], *statuses: str
) -> dict[str, Any]:
    for status in statuses:
        case = ok(await patch_case(client, case, status=status))
    return case


async def active_case(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    case = await open_case(client, **fields)
    return await move_case(client, case, "intake", "assessment", "planning", "active")
