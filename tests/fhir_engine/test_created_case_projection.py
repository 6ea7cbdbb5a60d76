"""A case made by a create is projected from the rows its unit of work holds (nothing is read
back: service/fhir_store/case_rows.py), and stores exactly what a full projection of the case
read back from the database stores, also for values the database gives back in another form
(times with an offset, decimals at their column's scale)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import event

from mappings import fhir_json
from service.db.session import Database
from service.fhir_engine.router import FhirEngine
from tests.fhir_api.test_transactions import discharge_bundle
from tests.fhir_engine.conftest import call, parsed
from tests.fhir_engine.test_resources_on_their_own import new_patient
from tests.fhir_store.test_partial_projection import assert_stored_is_a_full_projection

EXAMPLES = Path(__file__).parents[1] / "mappings" / "data" / "r4"
CHILD_TABLES = (
    "needs",
    "assessments",
    "goals",
    "interventions",
    "check_ins",
    "care_team_members",
    "transitions",
    "notes",
)


def rich_bundle(mrn: str) -> dict[str, Any]:
    """The discharge Bundle with times in other offsets than UTC and a decimal quantity."""
    bundle = copy.deepcopy(discharge_bundle(mrn))
    by_type = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    by_type["Condition"]["recordedDate"] = "2026-11-29T08:00:00-05:00"
    goal = by_type["Goal"]
    goal["startDate"] = "2026-11-30"
    goal["target"] = [{"detailQuantity": {"value": 1.5, "unit": "km"}, "dueDate": "2027-02-15"}]
    referral = by_type["ServiceRequest"]
    referral["authoredOn"] = "2026-11-30T09:15:00.123+02:00"
    referral["occurrencePeriod"] = {
        "start": "2026-12-01T10:00:00+01:00",
        "end": "2026-12-20T18:30:00+01:00",
    }
    by_type["CarePlan"]["period"] = {"start": "2026-11-30T12:00:00+09:00"}
    return bundle


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])

    event.listen(database.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", note)


def _case_of(answer: dict[str, Any]) -> str:
    (plan,) = [
        e["response"]["location"]
        for e in answer["entry"]
        if e["response"]["location"].startswith("CarePlan/")
    ]
    return str(plan.split("/")[1])


@pytest.mark.parametrize("bundle", [discharge_bundle, rich_bundle])
async def test_a_transaction_stores_what_a_full_projection_would(
    engine: FhirEngine, database: Database, bundle: Any
) -> None:
    with statements(database) as seen:
        answer = parsed(await call(engine, "POST", "", bundle(f"MRN-{bundle.__name__}")), 200)
    case_id = _case_of(answer)
    await assert_stored_is_a_full_projection(database, case_id)
    # The new case's records were projected from memory, never read back.
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    for table in CHILD_TABLES:
        assert not [s for s in reads if f"FROM {table}" in s], table


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("CarePlan-*.json")))
async def test_a_care_plan_posted_alone_stores_what_a_full_projection_would(
    engine: FhirEngine, database: Database, name: str
) -> None:
    example = fhir_json.loads((EXAMPLES / name).read_bytes())
    patient_id = await new_patient(engine, f"MRN-{name}")
    example["subject"] = {"reference": f"Patient/{patient_id}"}
    for key in ("goal", "addresses", "careTeam", "activity", "basedOn", "replaces", "partOf"):
        example.pop(key, None)  # references to resources the example Bundle does not carry
    result = await call(engine, "POST", "CarePlan", orjson.dumps(example))
    if result.status >= 400:
        pytest.skip(f"the example is refused here: {result.body[:200]!r}")
    assert result.status == 201, result.body
    await assert_stored_is_a_full_projection(database, result.headers["Location"].split("/")[-3])
