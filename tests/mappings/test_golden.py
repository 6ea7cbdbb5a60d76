"""Golden cases -> FHIR: exact expected JSON, fhir.resources-valid, US Core conformant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from fhir_profiles.checker import check_all, missing_must_support
from mappings.bundles import export_bundle, full_url, transaction_bundle
from mappings.case_model import CaseRecord
from mappings.concept_maps import INTERVENTION_TYPE
from mappings.fhir import Bundle, resource_model
from mappings.fhir_datatypes import JsonDict
from mappings.projection import CaseProjection, project_case
from mappings.to_fhir.provenance import CaseChange, provenance_resource
from tests.mappings.cases import GOLDEN_CASES
from tests.mappings.golden_files import GOLDEN_DIR, REGENERATE, assert_golden

CASE_NAMES = sorted(GOLDEN_CASES)

# Must-support elements the case model never holds: absent from every resource of the type.
NEVER_HELD: dict[str, set[str]] = {
    "Patient": {"Patient.address", "Patient.telecom", "Patient.communication"},
    "Condition": {
        "Condition.meta.lastUpdated",  # the FHIR store sets it when it stores the version
        "Condition.verificationStatus",
        "Condition.onset[x]",
        "Condition.abatement[x]",
        # Medical and behavioral needs have no us-core-category (sdoh, functional-status).
        "Condition.category:screening-assessment",
    },
    "ServiceRequest": {
        "ServiceRequest.encounter",
    },
}


def held_but_missing(resource: JsonDict, case: CaseRecord, missing: list[str]) -> list[str]:
    """Missing must-support elements for which the case does hold data (should be empty)."""
    kind = resource["resourceType"]
    allowed = set(NEVER_HELD.get(kind, set()))
    if kind == "Condition":
        need = next(n for n in case.needs if n.id == resource["id"])
        if need.assessment_id is None:
            allowed.add("Condition.extension:assertedDate")
    if kind == "Goal":
        goal = next(g for g in case.goals if g.id == resource["id"])
        if goal.target is None:
            allowed.add("Goal.target")
    if kind == "ServiceRequest":
        sr = next(i for i in case.interventions if i.id == resource["id"])
        if sr.scheduled_start is None and sr.scheduled_end is None:
            allowed.add("ServiceRequest.occurrence[x]")
        if sr.requested_by is None:
            allowed.add("ServiceRequest.requester")
        entry = INTERVENTION_TYPE[sr.type]
        if not (entry.us_core_category or entry.category_code):
            allowed.add("ServiceRequest.category:us-core")
            if "category" not in resource:
                allowed.add("ServiceRequest.category")
    return [element for element in missing if element not in allowed]


def change_of(case: CaseRecord, projection: CaseProjection) -> CaseChange:
    return CaseChange(
        id=f"prov-{case.id}",
        recorded_at=case.updated_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        targets=[r.reference for r in projection],
        author=case.manager,
        reason="Case updated",
    )


@pytest.fixture(params=CASE_NAMES)
def golden_case(request: pytest.FixtureRequest) -> tuple[str, CaseRecord]:
    name: str = request.param
    factory: Callable[[], CaseRecord] = GOLDEN_CASES[name]
    return name, factory()


def test_resources_equal_the_golden_files(golden_case: tuple[str, CaseRecord]) -> None:
    name, case = golden_case
    projection = project_case(case)
    folder = GOLDEN_DIR / name
    expected_files = {f"{r.resource_type}-{r.id}.json" for r in projection}
    for resource in projection:
        assert_golden(folder / f"{resource.resource_type}-{resource.id}.json", resource.resource)
    provenance = provenance_resource(change_of(case, projection))
    assert_golden(folder / "Provenance.json", provenance)
    assert_golden(folder / "transaction.json", transaction_bundle(projection, [provenance]))
    expected_files |= {"Provenance.json", "transaction.json"}
    if not REGENERATE:
        assert {p.name for p in folder.iterdir()} == expected_files, "stray golden files"


def test_every_resource_conforms(golden_case: tuple[str, CaseRecord]) -> None:
    _, case = golden_case
    projection = project_case(case)
    resources = [r.resource for r in projection]
    resources.append(provenance_resource(change_of(case, projection)))
    problems: list[str] = []
    for resource in resources:
        resource_model(resource["resourceType"]).model_validate(resource)
        label = f"{resource['resourceType']}/{resource['id']}"
        problems += [
            f"{label}: {i.expression}: {i.message} ({i.profile})"
            for i in check_all(resource)
            if i.severity == "error"
        ]
        for profile in resource["meta"]["profile"]:
            missing = missing_must_support(resource, profile)
            if resource["resourceType"] != "Provenance":
                problems += [
                    f"{label}: must-support {m} missing ({profile})"
                    for m in held_but_missing(resource, case, missing)
                ]
    assert problems == []


def test_every_resource_declares_profiles_and_identifier(
    golden_case: tuple[str, CaseRecord],
) -> None:
    _, case = golden_case
    for resource in project_case(case):
        body = resource.resource
        assert body["meta"]["profile"], resource.reference
        assert body["text"]["status"] == "generated"
        assert any(
            i["system"].startswith("https://casebridge.dev/fhir/sid/") for i in body["identifier"]
        )


def test_transaction_bundle_is_valid_and_conditional(golden_case: tuple[str, CaseRecord]) -> None:
    _, case = golden_case
    projection = project_case(case)
    provenance = provenance_resource(change_of(case, projection))
    bundle = transaction_bundle(projection, [provenance])
    Bundle.model_validate(bundle)
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(url.startswith("urn:uuid:") for url in urls)
    for entry in bundle["entry"]:
        request = entry["request"]
        kind = entry["resource"]["resourceType"]
        assert "id" not in entry["resource"]
        if kind == "Patient":
            assert request["method"] == "POST"
            assert request["ifNoneExist"].startswith("identifier=")
        elif kind == "Provenance":
            assert request == {"method": "POST", "url": "Provenance"}
        else:
            assert request["method"] == "PUT"
            assert request["url"].startswith(f"{kind}?identifier=https://casebridge.dev/fhir/sid/")
    # The rewritten entries still conform (cb-servicerequest-2 needs basedOn typed CarePlan).
    for entry in bundle["entry"]:
        errors = [i for i in check_all(entry["resource"]) if i.severity == "error"]
        assert errors == [], entry["fullUrl"]
    # Every reference between entries points at an entry's fullUrl.
    plan = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert plan["resource"]["subject"]["reference"] == full_url(f"Patient/{case.patient.id}")
    assert all(g["reference"] in urls for g in plan["resource"].get("goal", []))
    assert all(t["reference"] in urls for t in bundle["entry"][-1]["resource"]["target"])


def test_export_bundle_is_a_valid_collection(golden_case: tuple[str, CaseRecord]) -> None:
    _, case = golden_case
    projection = project_case(case)
    bundle = export_bundle(projection, "https://casebridge.example.org/fhir/", case.updated_at)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    assert [e["resource"] for e in bundle["entry"]] == [r.resource for r in projection]
    assert bundle["entry"][0]["fullUrl"] == (
        f"https://casebridge.example.org/fhir/Patient/{case.patient.id}"
    )
