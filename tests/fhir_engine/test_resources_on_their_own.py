"""Resources that arrive on their own (issue #15, item 4), through `FhirEngine.handle` without
HTTP: a Patient is a local patient, a ServiceRequest is a referral intake, a Goal, Condition or
CareTeam joins the patient's open case or opens one; transactions carry POST, PUT, DELETE and
conditional entries, all or nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from service.cases.models import Case
from service.db.session import Database
from service.fhir_engine.router import FhirEngine
from tests.fhir_engine.conftest import call, parsed, refused

MRN = "http://hospital.example.org/mrn"


def patient(mrn: str = "MRN-100", family: str = "Okafor") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": ["Chidi"]}],
        "gender": "male",
        "birthDate": "1948-03-02",
    }


def service_request(patient_id: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"text": "Home safety assessment"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2017-03-05",
        **more,
    }


def goal(patient_id: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "proposed",
        "description": {"text": "Walk to the shops unaided"},
        "subject": {"reference": f"Patient/{patient_id}"},
        **more,
    }


def condition(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                        "code": "health-concern",
                    }
                ]
            }
        ],
        "code": {"text": "Lives alone, at risk of falls"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def care_team(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": f"Patient/{patient_id}"},
        "contained": [
            {"resourceType": "Practitioner", "id": "nurse", "name": [{"text": "N. Ruiz"}]}
        ],
        "participant": [
            {
                "role": [{"text": "Case manager"}],
                "member": {"reference": "#nurse", "display": "N. Ruiz"},
            }
        ],
    }


async def new_patient(engine: FhirEngine, mrn: str = "MRN-100") -> str:
    created = parsed(await call(engine, "POST", "Patient", patient(mrn)), 201)
    return str(created["id"])


async def open_cases(database: Database, patient_id: str) -> list[Case]:
    async with database.transaction(write=False) as session:
        return list(await session.scalars(select(Case).where(Case.patient_id == patient_id)))


async def test_a_patient_is_created_read_and_updated(engine: FhirEngine) -> None:
    sent = patient()
    created = parsed(await call(engine, "POST", "Patient", sent), 201)
    assert created["name"][0] == sent["name"][0]
    assert created["birthDate"] == "1948-03-02"
    assert {"system": MRN, "value": "MRN-100"} in created["identifier"]
    changed = {**created, "name": [{"family": "Okafor-Ruiz", "given": ["Chidi"]}]}
    updated = parsed(await call(engine, "PUT", f"Patient/{created['id']}", changed), 200)
    assert updated["name"][0]["family"] == "Okafor-Ruiz"
    assert updated["meta"]["versionId"] != created["meta"]["versionId"]
    read = parsed(await call(engine, "GET", f"Patient/{created['id']}"), 200)
    assert read["name"][0]["family"] == "Okafor-Ruiz"


async def test_a_patient_identifier_names_one_patient(engine: FhirEngine) -> None:
    await new_patient(engine, "MRN-200")
    body = refused(await call(engine, "POST", "Patient", patient("MRN-200")), 409)
    assert f"{MRN}|MRN-200 already names patient" in body["issue"][0]["diagnostics"]


async def test_a_patient_value_too_long_to_keep_is_refused_by_element(engine: FhirEngine) -> None:
    body = refused(await call(engine, "POST", "Patient", patient(family="x" * 300)), 422)
    assert body["issue"][0]["expression"] == ["Patient.name[0].family"]


async def test_a_lone_service_request_is_a_referral_intake(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine)
    created = parsed(await call(engine, "POST", "ServiceRequest", service_request(patient_id)), 201)
    assert created["authoredOn"] == "2017-03-05"
    [case] = await open_cases(database, patient_id)
    assert case.status == "referral"
    assert {"reference": f"CarePlan/{case.id}"} in [
        {"reference": r["reference"]} for r in created["basedOn"]
    ]
    # A second referral naming that case joins it instead of opening another.
    second = service_request(patient_id, basedOn=[{"reference": f"CarePlan/{case.id}"}])
    parsed(await call(engine, "POST", "ServiceRequest", second), 201)
    assert len(await open_cases(database, patient_id)) == 1


async def test_a_referral_for_an_unknown_patient_is_refused_naming_the_subject(
    engine: FhirEngine,
) -> None:
    body = refused(await call(engine, "POST", "ServiceRequest", service_request("nobody")), 422)
    assert body["issue"][0]["expression"] == ["ServiceRequest.subject"]
    assert "not known" in body["issue"][0]["diagnostics"]


async def test_a_goal_joins_the_open_case_or_opens_one(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine)
    parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    [case] = await open_cases(database, patient_id)
    assert case.status == "referral"
    parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    assert len(await open_cases(database, patient_id)) == 1
    plan = parsed(await call(engine, "GET", f"CarePlan/{case.id}"), 200)
    assert len(plan["goal"]) == 2


async def test_a_goal_with_several_open_cases_is_refused_unless_it_names_one(
    engine: FhirEngine,
) -> None:
    patient_id = await new_patient(engine)
    first = parsed(await call(engine, "POST", "ServiceRequest", service_request(patient_id)), 201)
    parsed(await call(engine, "POST", "ServiceRequest", service_request(patient_id)), 201)
    body = refused(await call(engine, "POST", "Goal", goal(patient_id)), 422)
    diagnostics = body["issue"][0]["diagnostics"]
    assert "2 open cases" in diagnostics
    assert "Goal.addresses" in diagnostics
    case_id = first["basedOn"][-1]["reference"].removeprefix("CarePlan/")
    assert f"CarePlan/{case_id}" in diagnostics
    # A Condition cannot say which case either: refused the same way.
    found = refused(await call(engine, "POST", "Condition", condition(patient_id)), 422)
    assert "2 open cases" in found["issue"][0]["diagnostics"]


async def test_a_condition_and_a_care_team_join_the_case_and_update(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine)
    sr = parsed(await call(engine, "POST", "ServiceRequest", service_request(patient_id)), 201)
    case_id = sr["basedOn"][-1]["reference"].removeprefix("CarePlan/")
    made = parsed(await call(engine, "POST", "Condition", condition(patient_id)), 201)
    assert made["code"]["text"] == "Lives alone, at risk of falls"
    resolved = {
        **made,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "resolved",
                }
            ]
        },
    }
    updated = parsed(await call(engine, "PUT", f"Condition/{made['id']}", resolved), 200)
    assert updated["clinicalStatus"]["coding"][0]["code"] == "resolved"
    addressed = goal(patient_id, addresses=[{"reference": f"Condition/{made['id']}"}])
    parsed(await call(engine, "POST", "Goal", addressed), 201)

    team = parsed(await call(engine, "POST", "CareTeam", care_team(patient_id)), 201)
    assert team["id"] == f"careteam-{case_id}"
    assert [p["member"]["display"] for p in team["participant"]] == ["N. Ruiz"]
    refused(await call(engine, "POST", "CareTeam", care_team(patient_id)), 409)
    dropped = {**team, "participant": []}
    body = refused(await call(engine, "PUT", f"CareTeam/{team['id']}", dropped), 422)
    assert body["issue"][0]["expression"] == ["CareTeam.participant"]
    assert len(await open_cases(database, patient_id)) == 1


async def test_a_transaction_of_lone_resources_with_put_and_delete(
    engine: FhirEngine, database: Database
) -> None:
    patient_url = "urn:uuid:6b3f8c52-0f2c-4d2e-9d1a-0d3c2c1b0a01"
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**goal("-"), "subject": {"reference": patient_url}},
                "request": {"method": "POST", "url": "Goal"},
            },
            {
                "fullUrl": patient_url,
                "resource": patient("MRN-300"),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={MRN}|MRN-300",
                },
            },
        ],
    }
    response = parsed(await call(engine, "POST", "", bundle), 200)
    assert response["type"] == "transaction-response"
    goal_location = response["entry"][0]["response"]["location"]
    patient_location = response["entry"][1]["response"]["location"]
    assert goal_location.startswith("Goal/")
    assert patient_location.startswith("Patient/")
    patient_id = patient_location.split("/")[1]
    goal_id = goal_location.split("/")[1]
    read_goal = parsed(await call(engine, "GET", f"Goal/{goal_id}"), 200)
    assert read_goal["subject"]["reference"] == f"Patient/{patient_id}"

    # PUT (conditional and plain) and DELETE in one transaction, all applied.
    changed_patient = parsed(await call(engine, "GET", f"Patient/{patient_id}"), 200)
    changed_patient["gender"] = "female"
    changed_goal = {**read_goal, "description": {"text": "Walk to the park"}}
    second = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": changed_goal,
                "request": {"method": "PUT", "url": f"Goal/{goal_id}"},
            },
            {
                "resource": changed_patient,
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN}|MRN-300"},
            },
        ],
    }
    done = parsed(await call(engine, "POST", "", second), 200)
    assert [e["response"]["status"] for e in done["entry"]] == ["200 OK", "200 OK"]
    assert parsed(await call(engine, "GET", f"Patient/{patient_id}"), 200)["gender"] == "female"
    third = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"Goal/{goal_id}"}}],
    }
    deleted = parsed(await call(engine, "POST", "", third), 200)
    assert deleted["entry"][0]["response"]["status"].startswith("204")
    refused(await call(engine, "GET", f"Goal/{goal_id}"), 410)


async def test_a_failing_entry_rolls_back_the_whole_transaction(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": goal(patient_id), "request": {"method": "POST", "url": "Goal"}},
            {"request": {"method": "DELETE", "url": "Goal/no-such-goal"}},
        ],
    }
    refused(await call(engine, "POST", "", bundle), 404)
    assert await open_cases(database, patient_id) == []
    async with database.transaction(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0


async def test_deletes_do_what_the_case_model_can_and_say_why_not(engine: FhirEngine) -> None:
    patient_id = await new_patient(engine)
    loose = parsed(await call(engine, "POST", "Condition", condition(patient_id)), 201)
    addressed = parsed(await call(engine, "POST", "Condition", condition(patient_id)), 201)
    the_goal = goal(patient_id, addresses=[{"reference": f"Condition/{addressed['id']}"}])
    goal_id = parsed(await call(engine, "POST", "Goal", the_goal), 201)["id"]
    team = parsed(await call(engine, "POST", "CareTeam", care_team(patient_id)), 201)

    deleted = await call(engine, "DELETE", f"Condition/{loose['id']}")
    assert deleted.status == 204
    refused(await call(engine, "GET", f"Condition/{loose['id']}"), 410)
    in_use = refused(await call(engine, "DELETE", f"Condition/{addressed['id']}"), 409)
    assert f"Goal/{goal_id}" in in_use["issue"][0]["diagnostics"]
    # The team entered in error leaves the case (tests/fhir_engine/test_deletes.py has more);
    # the patient their case names stays, saying why.
    assert (await call(engine, "DELETE", f"CareTeam/{team['id']}")).status == 204
    body = refused(await call(engine, "DELETE", f"Patient/{patient_id}"), 409)
    assert "1 case(s)" in body["issue"][0]["diagnostics"]
    provenance = parsed(await call(engine, "GET", "Provenance"), 200)["entry"][0]["resource"]
    body = refused(await call(engine, "DELETE", f"Provenance/{provenance['id']}"), 405)
    assert "history" in body["issue"][0]["diagnostics"]
