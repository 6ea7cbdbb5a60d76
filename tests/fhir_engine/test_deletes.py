"""Deleting a case's resources through `FhirEngine.handle`, no HTTP (issue #15): a CarePlan
withdraws a case opened in error, a Patient goes when nothing names them, a CareTeam entered
in error leaves its case (unless an EHR has it); deletes are idempotent, show in history and
leave searches; in a transaction they are all or nothing, with GET entries read last, seeing
the writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mappings.vocabulary import CaseStatus
from service.cases.models import Case, CaseEvent
from service.connections.models import AuthMode, Connection
from service.db.session import Database
from service.fhir_engine.router import FhirEngine
from service.links.models import LinkOrigin, ResourceLink
from service.patients.models import Patient
from service.pull.identity import resolve_conflict
from service.pull.models import IdentityConflict
from tests.fhir_engine.conftest import call, parsed, principal, refused
from tests.fhir_engine.test_resources_on_their_own import (
    MRN,
    care_team,
    condition,
    goal,
    new_patient,
    patient,
    service_request,
)


async def _case(engine: FhirEngine, patient_id: str, lifecycle: str = "proposed") -> dict[str, str]:
    """A case opened by lone resources: a Goal, a Condition, a draft referral, a CareTeam."""
    made = {
        "Goal": parsed(
            await call(engine, "POST", "Goal", goal(patient_id, lifecycleStatus=lifecycle)), 201
        ),
        "Condition": parsed(await call(engine, "POST", "Condition", condition(patient_id)), 201),
        "CareTeam": parsed(await call(engine, "POST", "CareTeam", care_team(patient_id)), 201),
    }
    plans = parsed(await call(engine, "GET", f"CarePlan?patient={patient_id}"), 200)
    [plan] = [e["resource"] for e in plans["entry"]]
    ids = {kind: str(resource["id"]) for kind, resource in made.items()}
    based_on = [{"reference": f"CarePlan/{plan['id']}"}]
    referral = service_request(patient_id, status="draft", basedOn=based_on)
    made_referral = parsed(await call(engine, "POST", "ServiceRequest", referral), 201)
    ids["ServiceRequest"] = str(made_referral["id"])
    return {"CarePlan": str(plan["id"]), **ids}


async def _found(engine: FhirEngine, query: str) -> list[str]:
    bundle = parsed(await call(engine, "GET", query), 200)
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


async def test_a_case_opened_in_error_is_withdrawn_by_deleting_its_care_plan(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine, "MRN-900")
    ids = await _case(engine, patient_id)

    deleted = await call(engine, "DELETE", f"CarePlan/{ids['CarePlan']}")
    assert deleted.status == 204
    assert deleted.facts is not None
    assert deleted.facts.patient_ids == {patient_id}
    for kind, resource_id in ids.items():
        refused(await call(engine, "GET", f"{kind}/{resource_id}"), 410)
        assert await _found(engine, f"{kind}?patient={patient_id}") == []
    history = parsed(await call(engine, "GET", f"CarePlan/{ids['CarePlan']}/_history"), 200)
    assert next(e["request"]["method"] for e in history["entry"]) == "DELETE"
    # A Provenance names the deleted versions, as a deletion.
    provenances = parsed(
        await call(engine, "GET", f"Provenance?target=CarePlan/{ids['CarePlan']}"), 200
    )
    activities = [e["resource"]["activity"]["coding"][0]["code"] for e in provenances["entry"]]
    assert "DELETE" in activities
    # Deleting again changes nothing (FHIR R4 http.html#delete).
    again = await call(engine, "DELETE", f"CarePlan/{ids['CarePlan']}")
    assert again.status == 204
    assert again.headers["ETag"] == deleted.headers["ETag"]
    async with database.transaction(write=False) as session:
        case = await session.get_one(Case, ids["CarePlan"])
        assert case.status is CaseStatus.entered_in_error
        events = list(await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)))
    withdrawn = [e for e in events if e.action == "withdrawn"]
    assert [e.actor for e in withdrawn] == ["client:engine-test"]
    # The withdrawn case is no one's open case: a new Goal opens a new one.
    goal_again = parsed(await call(engine, "POST", "Goal", goal(patient_id)), 201)
    plans = await _found(engine, f"CarePlan?patient={patient_id}")
    assert len(plans) == 1
    assert plans[0] != ids["CarePlan"]
    assert goal_again["id"] != ids["Goal"]


async def test_a_case_further_along_is_not_withdrawn_and_says_how_to_end_it(
    engine: FhirEngine,
) -> None:
    patient_id = await new_patient(engine, "MRN-901")
    ids = await _case(engine, patient_id, lifecycle="active")
    body = refused(await call(engine, "DELETE", f"CarePlan/{ids['CarePlan']}"), 409)
    diagnostics = body["issue"][0]["diagnostics"]
    assert "1 goal(s) past planned" in diagnostics
    assert "completed or revoked" in diagnostics
    for kind, resource_id in ids.items():
        parsed(await call(engine, "GET", f"{kind}/{resource_id}"), 200)


async def test_a_care_plan_entered_in_error_is_not_received_as_a_status(
    engine: FhirEngine,
) -> None:
    patient_id = await new_patient(engine, "MRN-902")
    ids = await _case(engine, patient_id)
    plan = parsed(await call(engine, "GET", f"CarePlan/{ids['CarePlan']}"), 200)
    plan["status"] = "entered-in-error"
    plan.pop("extension", None)
    body = refused(await call(engine, "PUT", f"CarePlan/{ids['CarePlan']}", plan), 422)
    assert "DELETE" in body["issue"][0]["diagnostics"]


async def test_a_patient_is_deleted_when_nothing_names_them(
    engine: FhirEngine, database: Database
) -> None:
    lone = await new_patient(engine, "MRN-910")
    deleted = await call(engine, "DELETE", f"Patient/{lone}")
    assert deleted.status == 204
    refused(await call(engine, "GET", f"Patient/{lone}"), 410)
    assert await _found(engine, f"Patient?identifier={MRN}|MRN-910") == []
    history = parsed(await call(engine, "GET", f"Patient/{lone}/_history"), 200)
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert (await call(engine, "DELETE", f"Patient/{lone}")).status == 204
    async with database.transaction(write=False) as session:
        assert await session.get(Patient, lone) is None
    # The identifier is free again.
    parsed(await call(engine, "POST", "Patient", patient("MRN-910")), 201)

    # A patient with a case is kept, and the refusal counts what names them, nothing more.
    kept = await new_patient(engine, "MRN-911")
    ids = await _case(engine, kept)
    body = refused(await call(engine, "DELETE", f"Patient/{kept}"), 409)
    assert "1 case(s)" in body["issue"][0]["diagnostics"]
    assert "Okafor" not in body["issue"][0]["diagnostics"]
    # Once the case is withdrawn, the patient may go, and the withdrawn case with them.
    assert (await call(engine, "DELETE", f"CarePlan/{ids['CarePlan']}")).status == 204
    assert (await call(engine, "DELETE", f"Patient/{kept}")).status == 204
    async with database.transaction(write=False) as session:
        assert await session.get(Case, ids["CarePlan"]) is None


async def test_a_patient_in_an_open_identity_conflict_is_kept_until_it_is_resolved(
    engine: FhirEngine, database: Database
) -> None:
    """An EHR patient that matched two local patients waits for a person to choose one: while
    it does, neither candidate is deleted (the choice would name a patient that is gone)."""
    chosen = await new_patient(engine, "MRN-915")
    other = await new_patient(engine, "MRN-916")
    bystander = await new_patient(engine, "MRN-917")
    async with database.transaction() as session:
        connection = Connection(
            name="ehr-915",
            base_url="https://ehr.example.com/fhir",
            auth_mode=AuthMode.none,
            signing_alg="ES384",
        )
        session.add(connection)
        await session.flush()
        conflict = IdentityConflict(
            connection_id=connection.id,
            remote_patient_id="remote-915",
            candidate_patient_ids=sorted([chosen, other]),
            reason="identifier MRN-915 -> one patient, MRN-916 -> another",
        )
        session.add(conflict)
    for candidate in (chosen, other):
        body = refused(await call(engine, "DELETE", f"Patient/{candidate}"), 409)
        assert "1 open identity conflict(s)" in body["issue"][0]["diagnostics"]
        parsed(await call(engine, "GET", f"Patient/{candidate}"), 200)
    # A patient the conflict does not name is not held by it.
    assert (await call(engine, "DELETE", f"Patient/{bystander}")).status == 204

    # Resolved to one of them: the other is free to go, the chosen one is held by the choice.
    async with database.unit_of_work() as session:
        await resolve_conflict(
            session, await session.get_one(IdentityConflict, conflict.id), chosen, "a person"
        )
    assert (await call(engine, "DELETE", f"Patient/{other}")).status == 204
    body = refused(await call(engine, "DELETE", f"Patient/{chosen}"), 409)
    diagnostics = body["issue"][0]["diagnostics"]
    assert "1 resolved identity conflict(s)" in diagnostics
    assert "open identity conflict" not in diagnostics


async def test_deletes_need_the_delete_scope(engine: FhirEngine) -> None:
    lone = await new_patient(engine, "MRN-920")
    reader = principal("system/*.rs")
    refused(await call(engine, "DELETE", f"Patient/{lone}", who=reader), 403)
    parsed(await call(engine, "GET", f"Patient/{lone}"), 200)
    refused(await call(engine, "DELETE", "Patient/no-such-patient"), 404)


async def test_the_care_team_entered_in_error_leaves_the_case_and_can_be_sent_again(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine, "MRN-930")
    ids = await _case(engine, patient_id)
    team = f"CareTeam/{ids['CareTeam']}"

    assert (await call(engine, "DELETE", team)).status == 204
    refused(await call(engine, "GET", team), 410)
    plan = parsed(await call(engine, "GET", f"CarePlan/{ids['CarePlan']}"), 200)
    assert "careTeam" not in plan
    assert await _found(engine, f"CareTeam?patient={patient_id}") == []
    async with database.transaction(write=False) as session:
        event = await session.scalar(
            select(CaseEvent).where(
                CaseEvent.case_id == ids["CarePlan"], CaseEvent.entity == "care_team"
            )
        )
    assert event is not None
    assert event.action == "deleted"
    assert event.changes == {"members": [1, 0]}

    # A team is sent again: the same CareTeam comes back, and the CarePlan names it.
    again = parsed(await call(engine, "POST", "CareTeam", care_team(patient_id)), 201)
    assert again["id"] == ids["CareTeam"]
    plan = parsed(await call(engine, "GET", f"CarePlan/{ids['CarePlan']}"), 200)
    assert plan["careTeam"] == [{"reference": team}]


async def test_a_care_team_exchanged_with_an_ehr_is_not_deleted(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine, "MRN-935")
    ids = await _case(engine, patient_id)
    async with database.transaction() as session:
        connection = Connection(
            name="ehr-935",
            base_url="https://ehr.example.com/fhir",
            auth_mode=AuthMode.none,
            signing_alg="ES384",
        )
        session.add(connection)
        await session.flush()
        session.add(
            ResourceLink(
                connection_id=connection.id,
                resource_type="CareTeam",
                local_id=ids["CareTeam"],
                remote_id="remote-team",
                origin=LinkOrigin.pushed,
            )
        )
    body = refused(await call(engine, "DELETE", f"CareTeam/{ids['CareTeam']}"), 409)
    assert "sent inactive" in body["issue"][0]["diagnostics"]
    parsed(await call(engine, "GET", f"CareTeam/{ids['CareTeam']}"), 200)


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


async def test_a_refused_delete_rolls_back_the_whole_transaction(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine, "MRN-940")
    ids = await _case(engine, patient_id, lifecycle="active")
    other = await new_patient(engine, "MRN-941")
    bundle = _transaction(
        {"resource": goal(other), "request": {"method": "POST", "url": "Goal"}},
        {"request": {"method": "DELETE", "url": f"Goal/{ids['Goal']}"}},
    )
    body = refused(await call(engine, "POST", "", bundle), 409)
    assert "Bundle.entry[1] (DELETE Goal)" in body["issue"][0]["diagnostics"]
    assert await _found(engine, f"Goal?patient={other}") == []
    parsed(await call(engine, "GET", f"Goal/{ids['Goal']}"), 200)


async def test_a_transaction_deletes_a_case_and_its_patient_and_reads_last(
    engine: FhirEngine, database: Database
) -> None:
    patient_id = await new_patient(engine, "MRN-950")
    ids = await _case(engine, patient_id)
    newcomer = "urn:uuid:2f0c1d7e-5b8a-4c1e-9f53-7a1d2b3c4d5e"
    bundle = _transaction(
        {"request": {"method": "GET", "url": f"Goal?patient={patient_id}"}},
        {"request": {"method": "GET", "url": f"Patient?identifier={MRN}|MRN-951"}},
        {"request": {"method": "DELETE", "url": f"CarePlan/{ids['CarePlan']}"}},
        {"request": {"method": "DELETE", "url": f"Patient/{patient_id}"}},
        {
            "fullUrl": newcomer,
            "resource": patient("MRN-951"),
            "request": {"method": "POST", "url": "Patient"},
        },
    )
    result = await call(engine, "POST", "", bundle)
    response = parsed(result, 200)
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["200 OK", "200 OK", "204 No Content", "204 No Content", "201 Created"]
    # The reads ran last: the case's goals are gone, the new patient is found.
    goals, found = (e["resource"] for e in response["entry"][:2])
    assert goals["type"] == "searchset"
    assert goals.get("entry", []) == []
    [match] = found["entry"]
    assert match["resource"]["identifier"][0]["value"] == "MRN-951"
    # Each read has its own audit facts; the transaction's are the result's.
    assert [(f.interaction, s) for f, s in result.entry_facts] == [
        ("search-type", 200),
        ("search-type", 200),
    ]
    refused(await call(engine, "GET", f"Patient/{patient_id}"), 410)
    refused(await call(engine, "GET", f"CarePlan/{ids['CarePlan']}"), 410)


async def test_a_failing_read_fails_the_transaction(engine: FhirEngine) -> None:
    patient_id = await new_patient(engine, "MRN-960")
    bundle = _transaction(
        {"request": {"method": "GET", "url": "Goal/no-such-goal"}},
        {"request": {"method": "DELETE", "url": f"Patient/{patient_id}"}},
    )
    body = refused(await call(engine, "POST", "", bundle), 404)
    assert "Bundle.entry[0] (GET Goal)" in body["issue"][0]["diagnostics"]
    parsed(await call(engine, "GET", f"Patient/{patient_id}"), 200)  # the delete rolled back


async def test_a_batch_reads_and_deletes_each_entry_on_its_own(engine: FhirEngine) -> None:
    lone = await new_patient(engine, "MRN-970")
    kept = await new_patient(engine, "MRN-971")
    await _case(engine, kept)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "DELETE", "url": f"Patient/{lone}"}},
            {"request": {"method": "DELETE", "url": f"Patient/{kept}"}},
            {"request": {"method": "GET", "url": f"Patient/{kept}"}},
        ],
    }
    response = parsed(await call(engine, "POST", "", bundle), 200)
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["204 No Content", "409 Conflict", "200 OK"]
    refused(await call(engine, "GET", f"Patient/{lone}"), 410)


async def test_a_conditional_delete_deletes_its_one_match(engine: FhirEngine) -> None:
    lone = await new_patient(engine, "MRN-980")
    deleted = await call(engine, "DELETE", f"Patient?identifier={MRN}|MRN-980")
    assert deleted.status == 204
    assert deleted.facts is not None
    assert deleted.facts.resource_id == lone
    refused(await call(engine, "GET", f"Patient/{lone}"), 410)
    # Nothing matches now: nothing is deleted.
    assert (await call(engine, "DELETE", f"Patient?identifier={MRN}|MRN-980")).status == 204
    # Several match: 412, and none is deleted.
    with_case = await new_patient(engine, "MRN-981")
    ids = await _case(engine, with_case)
    parsed(await call(engine, "POST", "Goal", goal(with_case)), 201)
    refused(await call(engine, "DELETE", f"Goal?patient={with_case}"), 412)
    parsed(await call(engine, "GET", f"Goal/{ids['Goal']}"), 200)
    # Criteria are required and checked: an unknown one never widens the match.
    refused(await call(engine, "DELETE", "Patient"), 400)
    refused(await call(engine, "DELETE", "Patient?no-such-param=1"), 400)
    parsed(await call(engine, "GET", f"Patient/{with_case}"), 200)
    # In a transaction too.
    bundle = _transaction(
        {"request": {"method": "DELETE", "url": f"CarePlan?patient={with_case}"}},
    )
    done = parsed(await call(engine, "POST", "", bundle), 200)
    assert done["entry"][0]["response"]["status"] == "204 No Content"
    refused(await call(engine, "GET", f"CarePlan/{ids['CarePlan']}"), 410)


async def test_a_put_to_an_id_that_never_existed_is_405(engine: FhirEngine) -> None:
    """R4 http.html#update: 405 when the resource did not exist and the server does not allow
    client defined ids (CapabilityStatement updateCreate false)."""
    patient_id = await new_patient(engine, "MRN-990")
    sent = goal(patient_id) | {"id": "client-chosen"}
    body = refused(await call(engine, "PUT", "Goal/client-chosen", sent), 405)
    assert "POST the Goal" in body["issue"][0]["diagnostics"]
    refused(await call(engine, "GET", "Goal/client-chosen"), 404)


async def test_a_conditional_delete_needs_real_criteria_and_a_deletable_type(
    engine: FhirEngine,
) -> None:
    """Without a criterion (only `_include`, or a `_cursor` that skips matches) every Goal
    the client may delete would match: 400. A type never deleted is 405 whatever matches."""
    patient_id = await new_patient(engine, "MRN-995")
    ids = await _case(engine, patient_id)
    for query in (
        "Goal?_include=Goal:subject",
        "Goal?_count=5",
        f"Goal?_id={ids['Goal']}&_cursor=x",
    ):
        refused(await call(engine, "DELETE", query), 400)
    parsed(await call(engine, "GET", f"Goal/{ids['Goal']}"), 200)
    refused(await call(engine, "DELETE", "Provenance?_id=nothing-here"), 405)
