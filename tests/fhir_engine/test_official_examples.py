"""The official examples of the six types: every one of FHIR R4's (the hl7.fhir.r4.examples
4.0.1 package, in tests/mappings/data/r4) and US Core's (7.0.0 in tests/mappings/data/us-core;
the other ones of the 9.0.0 sources, which US Core 6.1/7.0 profiles need not accept, in
us-core-9), kept
in the repository so a clone alone runs them, each POSTed on its own about a
patient of ours, as a generic client would: every element either comes back as sent or is
named, in the create's OperationOutcome (a warning) or in its refusal (an error). What is
created reads back as stored and survives a read-modify-write (PUT of what was read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings import fhir_json
from mappings.bundles import with_references
from mappings.unkept_elements import unkept_elements
from service.fhir_engine.router import FhirEngine
from tests.fhir_engine.conftest import call
from tests.fhir_engine.test_resources_on_their_own import new_patient

EXAMPLES = Path(__file__).parents[1] / "mappings" / "data"
SIX_TYPES = ("Patient", "CarePlan", "Goal", "ServiceRequest", "Condition", "CareTeam")
NAMES = sorted(
    f"{p.parent.name}/{p.name}"
    for folder in ("r4", "us-core", "us-core-9")
    for p in (EXAMPLES / folder).glob("*.json")
    if p.name.startswith(tuple(f"{kind}-" for kind in SIX_TYPES))
)


def _patients(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            found.add(reference)
        for item in value.values():
            _patients(item, found)
    elif isinstance(value, list):
        for item in value:
            _patients(item, found)
    return found


def test_the_examples_are_there() -> None:
    # Every R4 example of the six types, and US Core's (7.0.0, and 9.0.0's other ones).
    assert sum(name.startswith("r4/") for name in NAMES) >= 68, EXAMPLES
    assert sum(name.startswith("us-core") for name in NAMES) >= 22, EXAMPLES


@pytest.mark.parametrize("name", NAMES)
async def test_an_official_example_comes_back_or_is_named(engine: FhirEngine, name: str) -> None:
    example = fhir_json.loads((EXAMPLES / name).read_bytes())
    kind = example["resourceType"]
    patient_id = await new_patient(engine, f"MRN-{name}")
    sent = with_references(
        example, dict.fromkeys(_patients(example, set()), f"Patient/{patient_id}")
    )
    result = await call(
        engine, "POST", kind, fhir_json.dumps(sent), headers={"Prefer": "return=OperationOutcome"}
    )
    answer = orjson.loads(result.body)
    assert answer["resourceType"] == "OperationOutcome"
    if result.status >= 400:
        # Refused: with a reason that names the element.
        assert result.status in (400, 409, 422), result.body
        assert all(issue.get("expression") for issue in answer["issue"]), result.body
        return
    assert result.status == 201, result.body
    location = result.headers["Location"].split("/fhir/")[1]
    resource_id = location.split("/")[1]
    read = await call(engine, "GET", f"{kind}/{resource_id}")
    assert read.status == 200, read.body
    stored = fhir_json.loads(read.body)  # decimals as Decimal, like `sent`
    warned = {e for issue in answer["issue"] for e in issue.get("expression") or []}
    for issue in unkept_elements(sent, stored):
        assert issue["expression"][0] in warned, issue  # every difference was named

    # Read-modify-write: what was read goes back unchanged.
    again = await call(engine, "PUT", f"{kind}/{resource_id}", fhir_json.dumps(stored))
    if kind == "CarePlan" and stored["status"] in ("completed", "revoked"):
        # The example closed its case on arrival; a closed case's records are final.
        assert again.status == 409, again.body
        assert orjson.loads(again.body)["issue"][0]["expression"] == ["CarePlan.status"]
        return
    assert again.status == 200, again.body
    rewritten = fhir_json.loads(again.body)
    assert unkept_elements(stored, rewritten) == []
