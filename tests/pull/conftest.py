"""Fixtures of the pull tests: settings that let CaseBridge call loopback over http, a seeded
FHIR server, and what the server holds for a patient (read independently of the pull code)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from service.connections.models import AuthMode, Connection
from service.db.session import Database
from service.pull.reader import RECORD_TYPES
from service.settings import Settings
from tests.conftest import settings_for
from tests.pull.ehr_records import is_pulled_observation
from tests.pull.ehr_server import SeededEhr, start_seeded_sekmet, stop
from tests.smart.sekmet_server import sekmet_binary

EHR = "http://127.0.0.1:9/fhir"  # faked by respx in the API tests
PATIENTS = int(os.environ.get("CASEBRIDGE_PULL_TEST_PATIENTS", "200"))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        allow_insecure_http=True,
        allow_private_networks=True,
        ehr_timeout_seconds=1.0,
        ehr_max_concurrency=8,
        pull_patients_per_connection=8,
        pull_poll_seconds=0.2,
    )


@pytest.fixture(scope="session")
def seeded_ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededEhr]:
    binary = sekmet_binary()
    if binary is None:
        pytest.skip("the `sekmet` binary is missing: pip install sekmet-fhir (a test extra)")
    ehr, process = start_seeded_sekmet(binary, tmp_path_factory.mktemp("pull-ehr"), PATIENTS)
    yield ehr
    stop(process)


Key = tuple[str, str]


async def server_record(http: httpx.AsyncClient, base_url: str, patient_id: str) -> dict[Key, Any]:
    """Every resource of the patient a pull must bring, as the server holds it: the Patient
    compartment from $everything (Observations of the pulled categories only) and the Goals and
    CareTeams its CarePlans reference (sekmet keeps those out of the compartment)."""
    bundle = (await http.get(f"{base_url}/Patient/{patient_id}/$everything")).json()
    wanted = {"Patient", *RECORD_TYPES}
    record: dict[Key, Any] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind not in wanted or (kind == "Patient" and resource["id"] != patient_id):
            continue  # $everything also names other patients (of a Group, say)
        if kind == "Observation" and not is_pulled_observation(resource):
            continue
        record[(kind, resource["id"])] = resource
    plans = [r for (kind, _), r in record.items() if kind == "CarePlan"]
    for plan in plans:
        for element in ("goal", "careTeam"):
            for reference in plan.get(element) or []:
                kind, _, remote_id = reference["reference"].partition("/")
                record[(kind, remote_id)] = (
                    await http.get(f"{base_url}/{kind}/{remote_id}")
                ).json()
    return record


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=EHR, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def connection_id(database: Database) -> str:
    async with database.transaction() as session:
        connection = Connection(
            name="ehr",
            base_url=EHR,
            auth_mode=AuthMode.none,
            client_id=None,
            scopes=[],
            signing_alg="RS384",
            capabilities=None,
        )
        session.add(connection)
        await session.flush()
        return connection.id
