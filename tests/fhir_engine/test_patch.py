"""`PATCH` with a JSON Patch (FHIR R4 http.html#patch) through `FhirEngine.handle`: applied to
the current version, then the same path as a PUT (domain rules, If-Match, scopes)."""

from __future__ import annotations

import asyncio
from typing import Any

from service.fhir_engine.router import FhirEngine
from tests.fhir_engine.conftest import call, parsed, principal, refused
from tests.fhir_engine.test_resources_on_their_own import goal, new_patient

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


async def test_a_json_patch_updates_like_a_put(engine: FhirEngine) -> None:
    patient_id = await new_patient(engine, "MRN-P1")
    made = parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    url = f"Goal/{made['id']}"
    patch = [
        {"op": "test", "path": "/lifecycleStatus", "value": "proposed"},
        {"op": "replace", "path": "/description/text", "value": "Walk to the market"},
    ]
    result = await call(engine, "PATCH", url, patch, headers={**JSON_PATCH, "If-Match": 'W/"1"'})
    patched = parsed(result, 200)
    assert patched["description"]["text"] == "Walk to the market"
    assert patched["meta"]["versionId"] == "2"
    assert result.facts is not None
    assert result.facts.interaction == "patch"
    assert parsed(await call(engine, "GET", url), 200)["description"]["text"] == (
        "Walk to the market"
    )
    # Stale If-Match: 412, as for a PUT.
    refused(
        await call(engine, "PATCH", url, patch, headers={**JSON_PATCH, "If-Match": 'W/"1"'}), 412
    )
    # A failed test: 422, nothing changed.
    failed = [{"op": "test", "path": "/lifecycleStatus", "value": "active"}]
    refused(await call(engine, "PATCH", url, failed, headers=JSON_PATCH), 422)
    assert parsed(await call(engine, "GET", url), 200)["meta"]["versionId"] == "2"
    # Not a JSON Patch, or not one at all: 400.
    refused(await call(engine, "PATCH", url, patch), 400)
    refused(await call(engine, "PATCH", url, {"op": "add"}, headers=JSON_PATCH), 400)
    refused(await call(engine, "PATCH", url, [{"op": "jump"}], headers=JSON_PATCH), 400)
    # The scopes of an update.
    reader = principal("system/*.rs")
    refused(await call(engine, "PATCH", url, patch, headers=JSON_PATCH, who=reader), 403)
    refused(await call(engine, "PATCH", "Goal/no-such-goal", patch, headers=JSON_PATCH), 404)


async def test_concurrent_patches_of_a_patient_each_apply_to_what_the_last_left(
    engine: FhirEngine,
) -> None:
    """Each PATCH of a Patient takes the patient's lock before it reads the version it patches:
    patches sent at once (on PostgreSQL, on connections of their own) all apply, none reverts
    or refuses another."""
    patient_id = await new_patient(engine, "MRN-P2")
    url = f"Patient/{patient_id}"
    phones = [f"555-01{n:02d}" for n in range(6)]
    first = [{"op": "add", "path": "/telecom", "value": [{"system": "email", "value": "a@b.c"}]}]
    parsed(await call(engine, "PATCH", url, first, headers=JSON_PATCH), 200)

    def add_phone(phone: str) -> list[dict[str, Any]]:
        return [{"op": "add", "path": "/telecom/-", "value": {"system": "phone", "value": phone}}]

    results = await asyncio.gather(
        *(call(engine, "PATCH", url, add_phone(p), headers=JSON_PATCH) for p in phones)
    )
    assert [r.status for r in results] == [200] * len(phones), [r.body for r in results]
    final = parsed(await call(engine, "GET", url), 200)
    assert sorted(t["value"] for t in final["telecom"]) == sorted([*phones, "a@b.c"])
    assert final["meta"]["versionId"] == str(2 + len(phones))
