"""Independent FHIR clients (fhirpy, fhirclient) against CaseBridge served over real HTTP on
loopback, with a real SMART Backend Services token from our own token endpoint."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from fhirclient.models.careplan import CarePlan as FhirclientCarePlan
from fhirclient.models.goal import Goal as FhirclientGoal
from fhirclient.models.patient import Patient as FhirclientPatient
from fhirclient.models.servicerequest import ServiceRequest as FhirclientServiceRequest
from fhirclient.server import FHIRServer
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as FhirpyOutcome
from joserfc import jwt
from joserfc.jwk import ECKey

from service.db.session import Database
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY
from tests.fhir_api.test_transactions import discharge_bundle
from tests.integration.casebridge_server import casebridge_server

pytestmark = pytest.mark.integration

KEY = ECKey.generate_key("P-384", parameters={"kid": "planner-1"})
SCOPES = " ".join(
    f"system/{t}.cruds"
    for t in ("CarePlan", "Goal", "ServiceRequest", "Condition", "CareTeam", "Patient")
)


@pytest.fixture
def server(settings: Settings, database: Database, tmp_path: Path) -> Iterator[str]:
    assert settings.encryption_key is not None
    with casebridge_server(
        settings.database_url,
        settings.encryption_key.get_secret_value(),
        BOOTSTRAP_KEY,
        tmp_path / "casebridge.log",
    ) as base_url:
        yield base_url


async def access_token(http: httpx.AsyncClient, base_url: str) -> str:
    """Register a discharge-planning app with its JWKS, then run client_credentials."""
    client_id = f"planner-{uuid.uuid4().hex[:8]}"
    registered = await http.post(
        "/api/admin/fhir-clients",
        headers={"X-API-Key": BOOTSTRAP_KEY},
        json={
            "client_id": client_id,
            "name": "Discharge planner",
            "scopes": SCOPES.split(),
            "jwks": {"keys": [dict(KEY.as_dict(private=False))]},
        },
    )
    assert registered.status_code == 201, registered.text
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES384", "kid": KEY.kid, "typ": "JWT"},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{base_url}/auth/token",
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
        },
        KEY,
        algorithms=["ES384"],
    )
    response = await http.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": SCOPES,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def open_case(http: httpx.AsyncClient) -> dict[str, Any]:
    headers = {"X-API-Key": BOOTSTRAP_KEY}
    patient = (
        await http.post(
            "/api/patients", headers=headers, json={"given_name": "Ada", "family_name": "Byron"}
        )
    ).json()
    case: dict[str, Any] = (
        await http.post(
            "/api/cases",
            headers=headers,
            json={"patient_id": patient["id"], "program": "geriatric"},
        )
    ).json()
    return case


class BearerAuth:
    """fhirclient's hook for signing requests: ours adds the access token."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.ready = True

    def can_sign_headers(self) -> bool:
        return True

    def signed_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return headers | {"Authorization": f"Bearer {self.token}"}


class Clients(NamedTuple):
    """The server's base URL, an access token, and the two clients signed in with it."""

    server: str
    token: str
    fhirpy: AsyncFHIRClient
    fhirclient: FHIRServer


@pytest.fixture
async def clients(server: str) -> Clients:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        token = await access_token(http, server)
    fhirclient = FHIRServer(None, base_uri=f"{server}/fhir/")
    fhirclient.auth = BearerAuth(token)
    fhirpy = AsyncFHIRClient(f"{server}/fhir", authorization=f"Bearer {token}")
    return Clients(server, token, fhirpy, fhirclient)


async def test_fhirpy_and_fhirclient_search_read_and_transact(clients: Clients) -> None:
    server, _token, fhirpy, fhir_server = clients
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        case = await open_case(http)

    found = await fhirpy.resources("CarePlan").search(patient=case["patient_id"]).fetch()
    assert [plan["id"] for plan in found] == [case["id"]]
    plan = await fhirpy.reference("CarePlan", case["id"]).to_resource()
    assert plan["subject"]["reference"] == f"Patient/{case['patient_id']}"

    read = await asyncio.to_thread(FhirclientCarePlan.read, case["id"], fhir_server)
    assert read.id == case["id"]
    assert read.subject.reference == f"Patient/{case['patient_id']}"
    search = FhirclientCarePlan.where(struct={"patient": case["patient_id"]})
    plans = await asyncio.to_thread(lambda: list(search.perform_resources_iter(fhir_server)))
    assert [p.id for p in plans] == [case["id"]]

    response = await fhirpy.execute("", method="post", data=discharge_bundle())
    assert response["type"] == "transaction-response"
    location = next(
        e["response"]["location"]
        for e in response["entry"]
        if "CarePlan/" in e["response"]["location"]
    )
    created = await fhirpy.reference("CarePlan", location.split("/")[1]).to_resource()
    assert created["title"] == "Discharge to home after hip replacement"
    goals = await fhirpy.resources("Goal").search(patient=created["subject"]["reference"]).fetch()
    assert len(goals) == 1


MRN = "http://hospital.example.org/mrn"


def _subject(patient_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


def health_concern(fhirpy: AsyncFHIRClient, patient_id: str, text: str) -> Any:
    """A US Core health concern (a Condition) of the patient, not saved yet: the first one
    opens a case."""
    return fhirpy.resource(
        "Condition",
        category=[
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                        "code": "health-concern",
                    }
                ]
            }
        ],
        code={"text": text},
        subject=_subject(patient_id),
    )


def care_team(fhirpy: AsyncFHIRClient, patient_id: str) -> Any:
    """The case's care team, with its case manager, not saved yet."""
    return fhirpy.resource(
        "CareTeam",
        subject=_subject(patient_id),
        participant=[{"member": {"display": "R. Osei"}, "role": [{"text": "Case manager"}]}],
    )


async def opened_case(fhirpy: AsyncFHIRClient, mrn: str) -> dict[str, str]:
    """A patient, and a case opened by a Condition, with a proposed Goal, a draft referral and
    a care team: nothing done in it yet. The ids by type."""
    patient = fhirpy.resource(
        "Patient", identifier=[{"system": MRN, "value": mrn}], name=[{"family": "Okoye"}]
    )
    await patient.save()
    concern = health_concern(fhirpy, patient.id, "Lives alone")
    await concern.save()
    [plan] = await fhirpy.resources("CarePlan").search(patient=patient.id).fetch()
    goal = fhirpy.resource(
        "Goal",
        lifecycleStatus="proposed",
        description={"text": "Meals delivered"},
        subject=_subject(patient.id),
    )
    await goal.save()
    referral = fhirpy.resource(
        "ServiceRequest",
        status="draft",
        intent="order",
        code={"text": "Meals on wheels"},
        subject=_subject(patient.id),
        basedOn=[{"reference": f"CarePlan/{plan.id}"}],
    )
    await referral.save()
    team = care_team(fhirpy, patient.id)
    await team.save()
    return {
        "Patient": patient.id,
        "Condition": concern.id,
        "CarePlan": plan.id,
        "Goal": goal.id,
        "ServiceRequest": referral.id,
        "CareTeam": team.id,
    }


async def test_a_generic_client_writes_each_type_singly_and_in_transactions(
    clients: Clients,
) -> None:
    """fhirpy and fhirclient know nothing about cases: create, read, update, search and delete
    the six types, one at a time and in transactions, and get back what they sent."""
    server, token, fhirpy, fhir_server = clients

    patient = fhirpy.resource(
        "Patient",
        identifier=[{"system": MRN, "value": "GC-1"}],
        name=[{"family": "Nakamura", "given": ["Aiko"]}],
        birthDate="1941-07-30",
        gender="female",
    )
    await patient.save()
    patient["name"] = [{"family": "Nakamura-Ito", "given": ["Aiko"]}]
    await patient.save()
    assert (await fhirpy.reference("Patient", patient.id).to_resource())["name"][0][
        "family"
    ] == "Nakamura-Ito"
    found = await fhirpy.resources("Patient").search(identifier=f"{MRN}|GC-1").fetch()
    assert [p.id for p in found] == [patient.id]

    referral = fhirpy.resource(
        "ServiceRequest",
        status="active",
        intent="order",
        code={"text": "Home care assessment"},
        subject=_subject(patient.id),
        authoredOn="2017-03-05",
    )
    await referral.save()
    assert referral["authoredOn"] == "2017-03-05"
    [plan] = await fhirpy.resources("CarePlan").search(patient=patient.id).fetch()
    plan["title"] = "Home care after the fall"
    await plan.save()
    assert (await fhirpy.reference("CarePlan", plan.id).to_resource())["title"] == (
        "Home care after the fall"
    )
    concern = health_concern(fhirpy, patient.id, "Unsafe stairs at home")
    await concern.save()
    goal = fhirpy.resource(
        "Goal",
        lifecycleStatus="proposed",
        description={"text": "Climb the stairs safely"},
        subject=_subject(patient.id),
        addresses=[{"reference": f"Condition/{concern.id}"}],
    )
    await goal.save()
    goal["description"] = {"text": "Climb the stairs with a rail"}
    await goal.save()
    team = care_team(fhirpy, patient.id)
    await team.save()
    assert team.id == f"careteam-{plan.id}"
    for kind, count in [("Goal", 1), ("Condition", 1), ("ServiceRequest", 1), ("CareTeam", 1)]:
        matches = await fhirpy.resources(kind).search(patient=patient.id).fetch()
        assert len(matches) == count, kind
    assert (await fhirpy.reference("Goal", goal.id).to_resource())["description"] == {
        "text": "Climb the stairs with a rail"
    }

    sent_goal = {
        "resourceType": "Goal",
        "lifecycleStatus": "proposed",
        "description": {"text": "Walk to the post office"},
        "subject": _subject(patient.id),
    }
    made = await asyncio.to_thread(FhirclientGoal(sent_goal).create, fhir_server)
    assert made is not None
    assert made["description"] == sent_goal["description"]
    read = await asyncio.to_thread(FhirclientGoal.read, made["id"], fhir_server)
    assert read.description.text == "Walk to the post office"
    await asyncio.to_thread(read.delete, fhir_server)  # proposed: it may be withdrawn
    gone = await http_status(server, token, f"/fhir/Goal/{made['id']}")
    assert gone == 410

    # A transaction: a new patient with a referral, a concern and a goal, by urn:uuid.
    who, need = (
        "urn:uuid:7d1c0d1e-9c55-4d43-9b43-2a9f4f0c7a11",
        "urn:uuid:7d1c0d1e-9c55-4d43-9b43-2a9f4f0c7a12",
    )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": who,
                "resource": {"resourceType": "Patient", "name": [{"family": "Silva"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {**plain(referral), "id": None, "subject": {"reference": who}},
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "fullUrl": need,
                "resource": {**plain(concern), "id": None, "subject": {"reference": who}},
                "request": {"method": "POST", "url": "Condition"},
            },
            {
                "resource": {
                    **sent_goal,
                    "subject": {"reference": who},
                    "addresses": [{"reference": need}],
                },
                "request": {"method": "POST", "url": "Goal"},
            },
        ],
    }
    for entry in bundle["entry"]:
        entry["resource"] = {k: v for k, v in entry["resource"].items() if v is not None}
        entry["resource"].pop("meta", None)
        entry["resource"].pop("identifier", None)
        entry["resource"].pop("basedOn", None)
    response = await fhirpy.execute("", method="post", data=bundle)
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["201 Created"] * 4
    new_goal = response["entry"][3]["response"]["location"].split("/")[1]
    goal_read = await fhirpy.reference("Goal", new_goal).to_resource()
    new_patient = goal_read["subject"]["reference"]
    assert new_patient == response["entry"][0]["response"]["location"].rsplit("/", 2)[0]
    # ...then PUT and DELETE entries in one transaction.
    goal_read["priority"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/goal-priority",
                "code": "high-priority",
            }
        ]
    }
    second = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": plain(goal_read),
                "request": {"method": "PUT", "url": f"Goal/{new_goal}"},
            },
            {"request": {"method": "DELETE", "url": f"Goal/{goal.id}"}},
        ],
    }
    done = await fhirpy.execute("", method="post", data=second)
    assert [e["response"]["status"] for e in done["entry"]] == ["200 OK", "204 No Content"]
    priority = (await fhirpy.reference("Goal", new_goal).to_resource())["priority"]
    assert priority["coding"][0]["code"] == "high-priority"
    assert await http_status(server, token, f"/fhir/Goal/{goal.id}") == 410


def plain(resource: Any) -> dict[str, Any]:
    """A fhirpy resource as plain JSON."""
    serialized: dict[str, Any] = resource.serialize()
    return serialized


async def http_status(server: str, token: str, path: str) -> int:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_a_generic_client_deletes_each_type(clients: Clients) -> None:
    """fhirpy and fhirclient delete each of the six types: what the case model lets go is gone
    (410, out of searches), what it keeps is refused with a reason; a transaction deletes a
    case and its patient together and reads last."""
    server, token, fhirpy, fhir_server = clients

    ids = await opened_case(fhirpy, "DEL-1")
    # Goal and Condition by fhirpy, ServiceRequest by fhirclient: each withdrawn on its own.
    await fhirpy.delete("Goal", ids["Goal"])
    await fhirpy.delete("Condition", ids["Condition"])
    referral = await asyncio.to_thread(
        FhirclientServiceRequest.read, ids["ServiceRequest"], fhir_server
    )
    await asyncio.to_thread(referral.delete, fhir_server)
    for kind in ("Goal", "Condition", "ServiceRequest"):
        assert await http_status(server, token, f"/fhir/{kind}/{ids[kind]}") == 410
        assert await fhirpy.resources(kind).search(patient=ids["Patient"]).fetch() == []
    # The CareTeam, entered in error, leaves the case; the Patient is refused, naming the case.
    await fhirpy.delete("CareTeam", ids["CareTeam"])
    assert await http_status(server, token, f"/fhir/CareTeam/{ids['CareTeam']}") == 410
    with pytest.raises(FhirpyOutcome) as refused_patient:
        await fhirpy.delete("Patient", ids["Patient"])
    assert "1 case(s)" in str(refused_patient.value)
    # The CarePlan, by fhirclient: the case opened in error is withdrawn.
    plan = await asyncio.to_thread(FhirclientCarePlan.read, ids["CarePlan"], fhir_server)
    await asyncio.to_thread(plan.delete, fhir_server)
    for kind in ("CarePlan", "CareTeam"):
        assert await http_status(server, token, f"/fhir/{kind}/{ids[kind]}") == 410
        assert await fhirpy.resources(kind).search(patient=ids["Patient"]).fetch() == []
    history = await fhirpy.execute(f"CarePlan/{ids['CarePlan']}/_history", method="get")
    assert history["entry"][0]["request"]["method"] == "DELETE"
    # Now nothing names the patient: fhirclient deletes them.
    patient = await asyncio.to_thread(FhirclientPatient.read, ids["Patient"], fhir_server)
    await asyncio.to_thread(patient.delete, fhir_server)
    assert await http_status(server, token, f"/fhir/Patient/{ids['Patient']}") == 410
    assert await fhirpy.resources("Patient").search(identifier=f"{MRN}|DEL-1").fetch() == []
    # Deleting again changes nothing (FHIR R4 http.html#delete).
    await fhirpy.delete("Patient", ids["Patient"])

    # A transaction: the case and its patient deleted together, a read of them last.
    more = await opened_case(fhirpy, "DEL-2")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Goal?patient={more['Patient']}"}},
            {"request": {"method": "DELETE", "url": f"CarePlan/{more['CarePlan']}"}},
            {"request": {"method": "DELETE", "url": f"Patient?identifier={MRN}|DEL-2"}},
        ],
    }
    done = await fhirpy.execute("", method="post", data=bundle)
    statuses = [e["response"]["status"] for e in done["entry"]]
    assert statuses == ["200 OK", "204 No Content", "204 No Content"]
    assert done["entry"][0]["resource"].get("entry", []) == []
    for kind in ("Patient", "CarePlan", "Goal", "ServiceRequest", "Condition", "CareTeam"):
        assert await http_status(server, token, f"/fhir/{kind}/{more[kind]}") == 410
