"""`PATCH` with a JSON Patch (FHIR R4 http.html#patch) through `FhirEngine.handle`: applied to
the current version, then the same path as a PUT (domain rules, If-Match, scopes)."""

from __future__ import annotations

import asyncio
import base64
import json
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


def _binary(patch: list[dict[str, Any]]) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _patch_entry(url: str, patch: list[dict[str, Any]], **request: str) -> dict[str, Any]:
    return {"resource": _binary(patch), "request": {"method": "PATCH", "url": url, **request}}


async def test_a_transaction_patches_with_a_binary_after_its_puts_all_or_nothing(
    engine: FhirEngine,
) -> None:
    """R4 http.html#patch: in a Bundle, the patch is a Binary; R4 http.html#trules: PATCH runs
    with the PUTs, after the POSTs, and a failed entry rolls every other back."""
    patient_id = await new_patient(engine, "MRN-P2")
    made = parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    url = f"Goal/{made['id']}"
    rename = [{"op": "replace", "path": "/description/text", "value": "Walk to the park"}]
    answer = parsed(
        await call(engine, "POST", "", _bundle("transaction", _patch_entry(url, rename))), 200
    )
    response = answer["entry"][0]["response"]
    assert response["status"] == "200 OK"
    assert response["etag"] == 'W/"2"'
    assert parsed(await call(engine, "GET", url), 200)["description"]["text"] == "Walk to the park"

    # A PATCH whose `test` fails takes a valid PATCH of the same Bundle down with it.
    again = [{"op": "replace", "path": "/description/text", "value": "Walk to the sea"}]
    failing = [{"op": "test", "path": "/lifecycleStatus", "value": "cancelled"}]
    bundle = _bundle("transaction", _patch_entry(url, again), _patch_entry(url, failing))
    outcome = refused(await call(engine, "POST", "", bundle), 422)
    assert "Bundle.entry[1]" in outcome["issue"][0]["diagnostics"]
    stored = parsed(await call(engine, "GET", url), 200)
    assert (stored["description"]["text"], stored["meta"]["versionId"]) == ("Walk to the park", "2")

    # ifMatch is the entry's If-Match.
    stale = _patch_entry(url, again, ifMatch='W/"1"')
    refused(await call(engine, "POST", "", _bundle("transaction", stale)), 412)


async def test_a_patch_entry_that_is_not_a_binary_json_patch_is_refused_by_name(
    engine: FhirEngine,
) -> None:
    patient_id = await new_patient(engine, "MRN-P3")
    made = parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    url = f"Goal/{made['id']}"
    fhirpath = {"resourceType": "Parameters", "parameter": [{"name": "operation"}]}
    not_base64 = _binary([]) | {"data": "%%%"}
    xml_patch = _binary([]) | {"contentType": "application/xml-patch+xml"}
    for resource, element, words in [
        (fhirpath, "resource", "FHIRPath Patch"),
        (not_base64, "resource.data", "base64"),
        (xml_patch, "resource.contentType", "contentType"),
    ]:
        entry = {"resource": resource, "request": {"method": "PATCH", "url": url}}
        outcome = refused(await call(engine, "POST", "", _bundle("transaction", entry)), 400)
        assert outcome["issue"][0]["expression"] == [f"Bundle.entry[0].{element}"]
        assert words in outcome["issue"][0]["diagnostics"]
    assert parsed(await call(engine, "GET", url), 200)["meta"]["versionId"] == "1"


async def test_a_batch_patches_each_entry_on_its_own(engine: FhirEngine) -> None:
    patient_id = await new_patient(engine, "MRN-P4")
    made = parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    url = f"Goal/{made['id']}"
    rename = [{"op": "replace", "path": "/description/text", "value": "Walk to the shop"}]
    failing = [{"op": "test", "path": "/lifecycleStatus", "value": "cancelled"}]
    fhirpath = {"resourceType": "Parameters", "parameter": []}
    bundle = _bundle(
        "batch",
        _patch_entry(url, rename),
        _patch_entry(url, failing),
        {"resource": fhirpath, "request": {"method": "PATCH", "url": url}},
    )
    answer = parsed(await call(engine, "POST", "", bundle), 200)
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses[0] == "200 OK"
    assert statuses[1].startswith("422")
    assert statuses[2].startswith("400")
    assert answer["entry"][0]["resource"]["description"]["text"] == "Walk to the shop"
    assert parsed(await call(engine, "GET", url), 200)["meta"]["versionId"] == "2"


async def test_a_transaction_patch_entry_names_one_resource(engine: FhirEngine) -> None:
    """As a lone PATCH (`PATCH Type/id`): a conditional PATCH entry is refused, not served
    in transactions alone."""
    patient_id = await new_patient(engine, "MRN-P5")
    parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    rename = [{"op": "replace", "path": "/description/text", "value": "Walk"}]
    entry = _patch_entry("Goal?identifier=urn:x|1", rename)
    outcome = refused(await call(engine, "POST", "", _bundle("transaction", entry)), 400)
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[0].request.url"]
