"""Who acts -> FHIR: an actor with a professional identity is a US Core Practitioner (NPI where
known), one without is the service's Organization, a plain name stays a display; and back, a
received reference to a Practitioner is kept as a reference."""

from __future__ import annotations

from typing import Any

from fhir_profiles.checker import check_all
from mappings.bundles import transaction_bundle
from mappings.canonical import IDENTIFIER_SYSTEM, NPI_SYSTEM
from mappings.case_model import CaseRecord, CheckInRecord, PersonRecord
from mappings.from_fhir import import_case, import_service_request
from mappings.projection import project_case
from mappings.to_fhir.context import CaseContext
from mappings.to_fhir.people import match_identifier, practitioner_id
from mappings.to_fhir.service_request import service_request_resource
from mappings.vocabulary import CheckInMode
from tests.mappings.cases import GOLDEN_CASES, at
from tests.mappings.test_from_fhir import RECEIVED_AT

NPI = "1234567893"
LEE = PersonRecord(actor="user:alee", family_name="Lee", given_names=("Ana",), npi=NPI)


def acted_by(requester: str, manager: str, people: tuple[PersonRecord, ...] = ()) -> CaseRecord:
    """The social-work golden case, its referrals requested and its check-in made by actors."""
    case = GOLDEN_CASES["social_work"]()
    return case.model_copy(
        update={
            "manager": manager,
            "interventions": tuple(
                i.model_copy(update={"requested_by": requester}) for i in case.interventions
            ),
            "check_ins": (
                CheckInRecord(
                    id="ci-1",
                    occurred_at=at("2026-11-20"),
                    mode=CheckInMode.phone,
                    performed_by=requester,
                ),
            ),
            "people": people,
        }
    )


def by_type(case: CaseRecord) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in project_case(case):
        found.setdefault(resource.resource_type, []).append(resource.resource)
    return found


def test_an_actor_with_an_npi_is_a_practitioner_named_by_requester_author_and_performer() -> None:
    resources = by_type(acted_by("user:alee", "user:alee", (LEE,)))

    [practitioner] = resources["Practitioner"]
    assert practitioner["id"] == practitioner_id("user:alee")
    assert {"system": NPI_SYSTEM, "value": NPI} in practitioner["identifier"]
    assert practitioner["name"][0]["family"] == "Lee"
    assert [i for i in check_all(practitioner) if i.severity == "error"] == []
    assert "Organization" not in resources  # nobody acted without an identity
    expected = {
        "reference": f"Practitioner/{practitioner['id']}",
        "type": "Practitioner",
        "display": "Ana Lee",
    }
    for request in resources["ServiceRequest"]:
        assert request["requester"] == expected
    [plan] = resources["CarePlan"]
    assert plan["author"] == expected
    [check_in] = [a for a in plan["activity"] if a.get("id") == "ci-1"]
    assert check_in["detail"]["performer"] == [expected]
    assert "user:alee" not in str(resources)


def test_an_api_key_with_no_person_is_the_service_organization() -> None:
    resources = by_type(acted_by("apikey:bootstrap", "Keisha Brown, LCSW"))

    [organization] = resources["Organization"]
    assert organization["identifier"] == [
        {"system": IDENTIFIER_SYSTEM["Organization"], "value": "casebridge"}
    ]
    assert "Practitioner" not in resources
    for request in resources["ServiceRequest"]:
        assert request["requester"] == {
            "reference": "Organization/casebridge",
            "type": "Organization",
            "display": "CaseBridge",
        }
    # A name that is no actor id (typed by a planner, or received) stays a display.
    assert resources["CarePlan"][0]["author"] == {"display": "Keisha Brown, LCSW"}
    assert "apikey" not in str(resources)


def test_people_are_matched_by_npi_else_by_the_casebridge_identifier() -> None:
    resources = by_type(acted_by("user:alee", "apikey:intake", (LEE,)))
    [practitioner], [organization] = resources["Practitioner"], resources["Organization"]
    assert match_identifier(practitioner) == (NPI_SYSTEM, NPI)
    without_npi = by_type(
        acted_by("user:bo", "user:bo", (PersonRecord(actor="user:bo", family_name="Bo"),))
    )
    [plain] = without_npi["Practitioner"]
    assert match_identifier(plain) == (IDENTIFIER_SYSTEM["Practitioner"], plain["id"])

    requests = {
        e["resource"]["resourceType"]: e["request"]
        for e in transaction_bundle(project_case(acted_by("user:alee", "apikey:intake", (LEE,))))[
            "entry"
        ]
    }
    # Created or matched, never overwritten: a conditional create, not an update.
    assert requests["Practitioner"] == {
        "method": "POST",
        "url": "Practitioner",
        "ifNoneExist": f"identifier={NPI_SYSTEM}|{NPI}",
    }
    assert requests["Organization"]["method"] == "POST"
    assert organization["id"] == "casebridge"


def test_a_received_reference_to_a_practitioner_is_kept_not_turned_into_a_display() -> None:
    exported = service_request_resource(
        acted_by("user:alee", "user:alee", (LEE,)).interventions[0],
        CaseContext.of(acted_by("user:alee", "user:alee", (LEE,))),
    )
    received = exported | {"requester": {"reference": "Practitioner/ehr-77", "display": "Dr. Rao"}}
    imported = import_service_request(received, CaseContext("case-1", "patient-1"))
    again = service_request_resource(imported.record, imported.context)
    assert again["requester"] == {"reference": "Practitioner/ehr-77", "display": "Dr. Rao"}


def test_an_exported_case_with_its_people_imports_again() -> None:
    case = acted_by("user:alee", "apikey:intake", (LEE,))
    resources = [r.resource for r in project_case(case)]
    imported = import_case(resources, RECEIVED_AT)
    requesters = {i.requested_by for i in imported.interventions}
    assert requesters  # the display of who asked, and the reference kept in the extras
    again = {r.resource_type: r.resource for r in project_case(imported)}
    assert again["ServiceRequest"]["requester"]["reference"] == (
        f"Practitioner/{practitioner_id('user:alee')}"
    )
