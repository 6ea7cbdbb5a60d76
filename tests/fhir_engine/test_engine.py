"""FHIR interactions through `FhirEngine.handle`, without HTTP: reads, searches with includes,
history, writes with their preconditions, batches, and every error as an OperationOutcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from service.fhir_auth.principal import FhirPrincipal
from service.fhir_engine.batches import process_batch
from service.fhir_engine.request import FhirOutcome, FhirRequest
from service.fhir_engine.router import FhirEngine
from tests.fhir_api.test_creates_and_deletes import goal
from tests.fhir_api.test_transactions import discharge_bundle
from tests.fhir_engine.conftest import BASE, call, parsed, principal, refused


async def new_case(engine: FhirEngine, mrn: str = "MRN-1") -> dict[str, str]:
    """A case from a transaction Bundle; `Type` -> id of what it made."""
    response = parsed(await call(engine, "POST", "", discharge_bundle(mrn)), 200)
    assert response["type"] == "transaction-response"
    made: dict[str, str] = {}
    for entry in response["entry"]:
        kind, resource_id = entry["response"]["location"].split("/")[:2]
        made.setdefault(kind, resource_id)
    return made


async def test_the_engine_imports_no_web_framework() -> None:
    package = Path(__file__).parents[2] / "service" / "fhir_engine"
    for module in package.glob("*.py"):
        text = module.read_text().lower()
        assert "fastapi" not in text, module
        assert "starlette" not in text, module


async def test_read_vread_and_conditional_read(engine: FhirEngine) -> None:
    made = await new_case(engine)
    read = await call(engine, "GET", f"CarePlan/{made['CarePlan']}")
    plan = parsed(read, 200)
    assert plan["id"] == made["CarePlan"]
    assert read.headers["ETag"] == f'W/"{plan["meta"]["versionId"]}"'
    assert read.facts is not None
    assert read.facts.interaction == "read"
    assert read.facts.patient_ids == {made["Patient"]}
    version = plan["meta"]["versionId"]
    vread = await call(engine, "GET", f"CarePlan/{made['CarePlan']}/_history/{version}")
    assert parsed(vread, 200)["id"] == made["CarePlan"]
    unchanged = await call(
        engine,
        "GET",
        f"CarePlan/{made['CarePlan']}",
        headers={"If-None-Match": read.headers["ETag"]},
    )
    assert (unchanged.status, unchanged.body) == (304, b"")


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("CarePlan/nope", 404),
        ("Observation/1", 404),
        ("CarePlan/bad$id", 400),
        ("CarePlan/x/_history/99999999999999999999999", 404),
        ("CarePlan/x/_history/two", 422),
    ],
)
async def test_read_errors_are_operation_outcomes(
    engine: FhirEngine, url: str, status: int
) -> None:
    refused(await call(engine, "GET", url), status)


async def test_a_too_large_version_of_a_known_resource_is_not_found(engine: FhirEngine) -> None:
    made = await new_case(engine)
    url = f"CarePlan/{made['CarePlan']}/_history/{2**63}"
    refused(await call(engine, "GET", url), 404)


async def test_search_with_include_and_revinclude(engine: FhirEngine) -> None:
    made = await new_case(engine)
    await new_case(engine, "MRN-2")
    found = parsed(
        await call(
            engine,
            "GET",
            f"Goal?patient={made['Patient']}&_include=Goal:subject&_revinclude=Provenance:target",
        ),
        200,
    )
    assert found["total"] == 1
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in found["entry"]}
    assert modes == {("Goal", "match"), ("Patient", "include"), ("Provenance", "include")}
    assert found["entry"][0]["fullUrl"] == f"{BASE}/Goal/{made['Goal']}"


async def test_a_patient_scope_confines_the_search(engine: FhirEngine) -> None:
    mine = await new_case(engine)
    await new_case(engine, "MRN-2")
    confined = principal("patient/*.rs", patient=mine["Patient"])
    found = parsed(await call(engine, "GET", "CarePlan", who=confined), 200)
    assert [e["resource"]["id"] for e in found["entry"]] == [mine["CarePlan"]]
    refused(await call(engine, "POST", "Goal", goal(mine["Patient"]), who=confined), 403)


async def test_create_update_history_and_delete(engine: FhirEngine) -> None:
    made = await new_case(engine)
    created = await call(engine, "POST", "Goal", goal(made["Patient"]))
    new_goal = parsed(created, 201)
    assert created.headers["Location"].startswith(f"{BASE}/Goal/{new_goal['id']}/_history/")
    new_goal["lifecycleStatus"] = "planned"
    url = f"Goal/{new_goal['id']}"
    updated = await call(
        engine, "PUT", url, new_goal, headers={"If-Match": created.headers["ETag"]}
    )
    assert parsed(updated, 200)["lifecycleStatus"] == "planned"
    stale = await call(engine, "PUT", url, new_goal, headers={"If-Match": created.headers["ETag"]})
    refused(stale, 412)
    history = parsed(await call(engine, "GET", f"{url}/_history"), 200)
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]
    deleted = await call(engine, "DELETE", url)
    assert deleted.status == 204
    refused(await call(engine, "GET", url), 410)


async def test_a_batch_calls_the_engine_for_each_entry(engine: FhirEngine) -> None:
    made = await new_case(engine)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"CarePlan/{made['CarePlan']}"}},
            {"request": {"method": "GET", "url": "Goal/missing"}},
            {"request": {"method": "GET", "url": "metadata"}},
            {"request": {"method": "GET", "url": "https://elsewhere.example/Goal/1"}},
        ],
    }
    result = await call(engine, "POST", "", bundle)
    entries = parsed(result, 200)["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "200 OK",
        "404 Not Found",
        "200 OK",
        "400 Bad Request",
    ]
    assert entries[0]["resource"]["id"] == made["CarePlan"]
    assert entries[3]["response"]["outcome"]["issue"][0]["expression"] == [
        "Bundle.entry[3].request.url"
    ]
    assert result.facts is not None
    assert result.facts.interaction == "batch"
    audited = [(facts.interaction, status) for facts, status in result.entry_facts]
    assert audited == [("read", 200), ("read", 404), ("operation", 200)]


async def test_a_failed_transaction_stores_nothing(engine: FhirEngine) -> None:
    bundle = discharge_bundle()
    bundle["entry"][-1]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    refused(await call(engine, "POST", "", bundle), 422)
    found = parsed(await call(engine, "GET", "CarePlan?_summary=count"), 200)
    assert found["total"] == 0


async def test_validate_stores_nothing(engine: FhirEngine) -> None:
    body = {"resourceType": "Goal", "lifecycleStatus": "bogus"}
    result = parsed(await call(engine, "POST", "Goal/$validate", body), 200)
    assert any(i["severity"] == "error" for i in result["issue"])
    assert parsed(await call(engine, "GET", "Goal"), 200)["total"] == 0


async def test_a_batch_entry_that_fails_on_the_server_fails_alone() -> None:
    async def handle(request: FhirRequest, who: FhirPrincipal) -> FhirOutcome:
        if request.id == "boom":
            raise RuntimeError("a bug")
        return FhirOutcome(200, b'{"resourceType":"Goal","id":"fine"}')

    entries = [
        {"request": {"method": "GET", "url": "Goal/boom"}},
        {"request": {"method": "GET", "url": "Goal/fine"}},
    ]
    body, _audited = await process_batch(
        handle,
        principal(),
        FhirRequest("POST", base_url=BASE),
        {"resourceType": "Bundle", "type": "batch", "entry": entries},
        10,
    )
    failed, fine = orjson.loads(body)["entry"]
    assert failed["response"]["status"] == "500 Internal Server Error"
    assert failed["response"]["outcome"]["issue"][0]["code"] == "exception"
    assert fine["response"]["status"] == "200 OK"
