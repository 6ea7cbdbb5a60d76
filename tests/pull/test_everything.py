"""A first pull by `Patient/$everything` where the EHR offers it and the scopes cover the
record; later pulls incremental, type by type; a failed `$everything` falls back to searches."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from typing import Any

import respx
from sqlalchemy import select

from service.connections.models import AuthMode, Connection
from service.db.session import Database
from service.ehr.client import FhirClient, RetryPolicy
from service.ehr.discovery import Capabilities, ResourceCapability, _capabilities_from
from service.ehr.url_policy import UrlPolicy
from service.pull.models import PulledRecord
from service.pull.reader import RECORD_TYPES, PullTarget
from service.pull.runner import scopes_cover_the_record
from service.pull.service import pull_patient_record
from tests.pull.conftest import EHR
from tests.pull.test_pull_api import bundle, remote_patient

SEARCHABLE = ResourceCapability(
    interactions=["read", "search-type"], search_params=["patient", "_lastUpdated"]
)
CAPABILITIES = Capabilities(
    resources={
        "Patient": ResourceCapability(interactions=["read"], operations=["everything"]),
        **{t: SEARCHABLE for t in RECORD_TYPES if t not in ("Goal", "CareTeam")},
    }
)
SERVER_DATE = dt.datetime(2026, 11, 30, 10, 0, 5, tzinfo=dt.UTC)


def observation(remote_id: str, category: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": remote_id,
        "status": "final",
        "category": [{"coding": [{"code": category}]}],
        "code": {"text": remote_id},
        "subject": {"reference": "Patient/r1"},
    }


EVERYTHING = {
    "resourceType": "Bundle",
    "type": "searchset",
    "entry": [
        {"resource": remote_patient()},
        {
            "resource": {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/r1"},
                "code": {"text": "Heart failure"},
            }
        },
        {"resource": observation("o-sdoh", "social-history")},
        {"resource": observation("o-vitals", "vital-signs")},
        {"resource": {"resourceType": "Patient", "id": "other"}},  # a server may name others
    ],
}


def client() -> FhirClient:
    policy = UrlPolicy(allow_insecure_http=True, allow_private_networks=True)
    return FhirClient(EHR, policy=policy, retry=RetryPolicy(max_retries=0))


async def pull(database: Database, connection_id: str) -> Any:
    async with client() as http:
        return await pull_patient_record(
            database,
            http,
            connection_id,
            PullTarget(remote_id="r1"),
            actor="test",
            capabilities=CAPABILITIES,
            observation_categories=("social-history",),
        )


async def test_a_first_pull_reads_everything_then_later_ones_search_what_changed(
    database: Database, ehr: respx.MockRouter, connection_id: str
) -> None:
    ehr.get("/Patient/r1").respond(json=remote_patient())
    everything = ehr.get("/Patient/r1/$everything").respond(
        json=EVERYTHING, headers={"Date": format_datetime(SERVER_DATE, usegmt=True)}
    )
    searches = {t: ehr.get(f"/{t}").respond(json=bundle()) for t in RECORD_TYPES}

    first = await pull(database, connection_id)
    assert first.failures == [], first.failures
    assert everything.call_count == 1
    requested = set(everything.calls.last.request.url.params["_type"].split(","))
    assert requested == set(RECORD_TYPES) - {"Goal", "CareTeam"}  # no search offered on those
    assert all(route.call_count == 0 for route in searches.values())
    async with database.transaction(write=False) as session:
        rows = await session.execute(select(PulledRecord.resource_type, PulledRecord.remote_id))
        stored = set(rows.all())
    # The vital signs are outside the pulled categories; the other Patient is not this one's.
    assert stored == {("Patient", "r1"), ("Condition", "c1"), ("Observation", "o-sdoh")}

    second = await pull(database, connection_id)
    assert second.failures == []
    assert everything.call_count == 1  # incremental now: type by type
    since = searches["Condition"].calls.last.request.url.params["_lastUpdated"]
    # The server's clock: its Date, less the time the exchange took (a lower bound).
    assert since.startswith("gt2026-11-30T10:00:0")
    assert dt.datetime.fromisoformat(since.removeprefix("gt")) <= SERVER_DATE


async def test_a_failed_everything_falls_back_to_searches(
    database: Database, ehr: respx.MockRouter, connection_id: str
) -> None:
    ehr.get("/Patient/r1").respond(json=remote_patient())
    ehr.get("/Patient/r1/$everything").respond(
        400, json={"resourceType": "OperationOutcome", "issue": []}
    )
    searches = {t: ehr.get(f"/{t}").respond(json=bundle()) for t in RECORD_TYPES}
    result = await pull(database, connection_id)
    assert result.patient_id is not None
    assert searches["Condition"].call_count == 1


def test_operations_are_discovered() -> None:
    statement = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {"type": "Patient", "operation": [{"name": "everything"}, {"name": "$match"}]}
                ],
            }
        ],
    }
    capabilities = _capabilities_from(statement, None)
    assert capabilities.supports_operation("Patient", "everything")
    assert capabilities.supports_operation("Patient", "$match")
    assert not capabilities.supports_operation("Patient", "export")


def test_everything_needs_scopes_that_cover_the_record() -> None:
    def connection(*scopes: str) -> Connection:
        return Connection(auth_mode=AuthMode.backend_services, scopes=list(scopes))

    assert scopes_cover_the_record(connection("system/*.rs"))
    assert scopes_cover_the_record(connection("system/*.read"))
    assert not scopes_cover_the_record(connection("system/Patient.rs", "system/Observation.rs"))
    assert scopes_cover_the_record(Connection(auth_mode=AuthMode.none, scopes=[]))
