"""FHIR -> case: official examples round-trip, golden cases come back equal, messy input is
kept, invalid input is rejected with an OperationOutcome pointing at the element.

The examples in `data/` are copies of the official FHIR R4 (`data/r4`) and US Core 7.0.0
(`data/us-core`) examples, and of US Core 9.0.0's further ones (`data/us-core-9`, round trips
only: some, a Patient without a gender, do not conform to the 6.1/7.0 profiles checked here);
the tests never read outside the repository.

Documented normalisations of a re-export (see `mappings.from_fhir`): `meta.versionId` and
`meta.lastUpdated` are the store's and CaseBridge's profiles are added (the sender's narrative
is kept and compared), the CaseBridge identifier is added, the categories
CaseBridge always writes are added after the received ones, a CareTeam takes its case's id.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhir_profiles.checker import check_all
from mappings.canonical import (
    CARE_TEAM_ROLE_SYSTEM,
    INTERVENTION_TYPE_SYSTEM,
    NEED_DOMAIN_SYSTEM,
    PROGRAM_SYSTEM,
    SDOHCC_TEMPORARY_CODES,
    SNOMED,
    US_CORE_CAREPLAN_CATEGORY,
    US_CORE_CATEGORY,
    US_CORE_CONDITION_CATEGORY,
)
from mappings.case_model import CaseRecord
from mappings.fhir_datatypes import JsonDict
from mappings.from_fhir import (
    ResourceRejected,
    accept_provenance,
    import_care_plan,
    import_care_team,
    import_case,
    import_condition,
    import_goal,
    import_patient,
    import_service_request,
)
from mappings.projection import project_case
from mappings.to_fhir.care_plan import care_plan_resource
from mappings.to_fhir.care_team import care_team_resource
from mappings.to_fhir.condition import condition_resource
from mappings.to_fhir.context import CaseContext
from mappings.to_fhir.goal import goal_resource
from mappings.to_fhir.patient import patient_resource
from mappings.to_fhir.service_request import service_request_resource
from tests.mappings.cases import GOLDEN_CASES

DATA = Path(__file__).parent / "data"
RECEIVED_AT = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
STORE_META = frozenset({"versionId", "lastUpdated"})
NOT_IMPORTED = {"Provenance"}  # history of changes, not case data: stored as received
EXAMPLES = sorted(
    p
    for p in DATA.glob("*/*.json")
    if json.loads(p.read_text())["resourceType"] not in NOT_IMPORTED
)
# Official examples the case cannot hold, refused with a reason that names the element.
REFUSED = {"ServiceRequest-myringotomy": "another server"}  # its subject is an absolute URL
OWN_CATEGORY_SYSTEMS = {
    US_CORE_CAREPLAN_CATEGORY,
    PROGRAM_SYSTEM,
    US_CORE_CONDITION_CATEGORY,
    US_CORE_CATEGORY,
    NEED_DOMAIN_SYSTEM,
    SDOHCC_TEMPORARY_CODES,
    SNOMED,
}


def load(path: Path) -> JsonDict:
    resource: JsonDict = json.loads(path.read_text(encoding="utf-8"))
    return resource


def care_team_case(team: JsonDict) -> CaseRecord:
    """A plan-only case for a CareTeam that arrives on its own."""
    subject = team.get("subject") or {"reference": "Patient/unknown"}
    plan = {"resourceType": "CarePlan", "id": team["id"], "status": "active", "intent": "plan"}
    return import_care_plan({**plan, "subject": subject}, RECEIVED_AT)


def reexport(resource: JsonDict) -> JsonDict:
    """Import a resource the way the FHIR API does, then project it again."""
    kind = resource["resourceType"]
    if kind == "Goal":
        goal = import_goal(resource)
        return goal_resource(goal.record, goal.context)
    if kind == "ServiceRequest":
        request = import_service_request(resource)
        return service_request_resource(request.record, request.context)
    if kind == "Condition":
        need = import_condition(resource)
        return condition_resource(need.record, need.context)
    if kind == "CarePlan":
        case = import_care_plan(resource, RECEIVED_AT)
        return care_plan_resource(case, CaseContext.of(case))
    if kind == "CareTeam":
        case = import_care_team(resource, care_team_case(resource))
        return care_team_resource(case, CaseContext.of(case))
    if kind == "Patient":
        return patient_resource(import_patient(resource))
    raise AssertionError(kind)


def normalised(received: JsonDict, exported: JsonDict) -> JsonDict:
    """`exported` with the documented normalisations undone against `received`."""
    result = {k: v for k, v in exported.items() if k != "meta"}
    if "text" not in received:  # none sent: CaseBridge generates one
        assert result.pop("text")["status"] == "generated"
    if "meta" in received:
        # The sender's profile, tag, security and source are kept; versionId and lastUpdated
        # are the store's, and CaseBridge's profiles are added after the received ones.
        sent = {k: v for k, v in received["meta"].items() if k not in STORE_META}
        kept = {k: v for k, v in exported["meta"].items() if k in sent}
        if "profile" in sent:
            assert kept["profile"][: len(sent["profile"])] == sent["profile"]
            kept["profile"] = sent["profile"]
        result["meta"] = {
            **kept,
            **{k: received["meta"][k] for k in STORE_META & set(received["meta"])},
        }
    if received["resourceType"] == "CareTeam":
        assert result["id"] == f"careteam-{received['id']}"
        result["id"] = received["id"]
    ours = [
        i for i in result.get("identifier", []) if "casebridge.dev/fhir/sid/" in i.get("system", "")
    ]
    assert len(ours) == 1, "exactly one CaseBridge identifier"
    result["identifier"] = [
        i for i in result["identifier"] if i not in ours or i in received.get("identifier", [])
    ]
    received_categories = received.get("category", [])
    categories = result.get("category", [])
    assert categories[: len(received_categories)] == received_categories
    for added in categories[len(received_categories) :]:
        assert {c["system"] for c in added["coding"]} <= OWN_CATEGORY_SYSTEMS, added
    result["category"] = received_categories
    return {k: v for k, v in result.items() if v != []}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_official_example_round_trips(path: Path) -> None:
    received = load(path)
    if path.stem in REFUSED:
        with pytest.raises(ResourceRejected, match=REFUSED[path.stem]):
            reexport(received)
        return
    exported = reexport(received)
    assert normalised(received, exported) == received
    assert next(iter(exported)) == "resourceType"


@pytest.mark.parametrize(
    "path", sorted(p for p in EXAMPLES if p.parent.name == "us-core"), ids=lambda p: p.stem
)
def test_us_core_example_stays_conformant_after_reexport(path: Path) -> None:
    received = load(path)
    if received["resourceType"] == "ServiceRequest":
        # As the FHIR API imports it: into a case, which gives it its CarePlan.
        request = import_service_request(received, CaseContext("case-1", "example", "Amy Shaw"))
        exported = service_request_resource(request.record, request.context)
    else:
        exported = reexport(received)
    errors = [i for i in check_all(exported) if i.severity == "error"]
    assert errors == []


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_case_to_fhir_to_case_is_equal(name: str) -> None:
    case = GOLDEN_CASES[name]()
    resources = [r.resource for r in project_case(case)]
    assert import_case(resources, RECEIVED_AT) == case


def test_golden_case_reexport_is_byte_identical() -> None:
    case = GOLDEN_CASES["social_work"]()
    first = project_case(case)
    again = project_case(import_case([r.resource for r in first], RECEIVED_AT))
    assert [r.json for r in again] == [r.json for r in first]


MESSY_GOAL: JsonDict = {
    "resourceType": "Goal",
    "id": "ehr-goal-77",
    "extension": [{"url": "http://ehr.example.org/fhir/goal-source", "valueString": "MyChart"}],
    "identifier": [{"system": "http://ehr.example.org/goal", "value": "77"}],
    "lifecycleStatus": "active",
    "achievementStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                "code": "improving",
            }
        ]
    },
    "description": {
        "coding": [
            {"system": SNOMED, "code": "289169006", "display": "Able to walk"},
            {"system": "http://ehr.example.org/goal-codes", "code": "WALK"},
        ],
        "text": "Walk to the mailbox",
    },
    "subject": {"reference": "Patient/p-9", "display": "Ana Lima"},
    "startDate": "2026-09-01",
    "target": [{"dueDate": "2026-12-01"}],
    "addresses": [{"reference": "Condition/need-x"}, {"reference": "Observation/unresolvable"}],
    "note": [{"text": "Free text from the EHR, no time"}],
}


def test_messy_goal_maps_what_fits_and_keeps_the_rest() -> None:
    imported = import_goal(MESSY_GOAL)
    goal = imported.record
    assert goal.description == "Walk to the mailbox"
    assert goal.code is not None
    assert goal.code.code == "289169006"
    assert goal.need_ids == ("need-x",)
    assert goal.achievement_status is not None
    assert goal.target is not None
    assert goal.target.due_date == dt.date(2026, 12, 1)
    kept = goal.fhir_extras["received"]
    assert set(kept) >= {"extension", "description", "addresses", "note", "identifier"}
    exported = goal_resource(goal, imported.context)
    assert normalised(MESSY_GOAL, exported) == MESSY_GOAL


def test_a_case_edit_wins_over_a_stale_received_element() -> None:
    imported = import_goal(MESSY_GOAL)
    edited = imported.record.model_copy(update={"description": "Walk to the corner shop"})
    exported = goal_resource(edited, imported.context)
    assert exported["description"]["text"] == "Walk to the corner shop"
    # Untouched foreign content is still given back.
    assert exported["extension"] == MESSY_GOAL["extension"]
    assert exported["addresses"] == MESSY_GOAL["addresses"]


def test_imported_service_request_keeps_its_type_and_unknown_codes() -> None:
    imported = import_service_request(
        load(DATA / "us-core" / "ServiceRequest-foodpantry-referral.json")
    )
    request = imported.record
    assert request.type.value == "food_assistance"
    exported = service_request_resource(request, imported.context)
    assert (
        exported["code"]
        == load(DATA / "us-core" / "ServiceRequest-foodpantry-referral.json")["code"]
    )
    assert INTERVENTION_TYPE_SYSTEM not in json.dumps(exported["code"])


def test_imported_care_team_maps_roles() -> None:
    team = load(DATA / "us-core" / "CareTeam-example.json")
    case = import_care_team(team, care_team_case(team))
    assert case.care_team, "members with an id and a name become case members"
    assert all(m.role.value for m in case.care_team)
    assert CARE_TEAM_ROLE_SYSTEM not in json.dumps(care_team_resource(case, CaseContext.of(case)))


MESSY_CONDITION: JsonDict = {
    "resourceType": "Condition",
    "id": "ehr-cond-5",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "remission",
            }
        ]
    },
    "category": [
        {"coding": [{"system": SDOHCC_TEMPORARY_CODES, "code": "food-insecurity"}]},
        {"text": "Social needs"},
    ],
    "code": {"text": "Skips meals at the end of the month"},
    "subject": {"reference": "Patient/p-9"},
    "recordedDate": "2026-09-02",
    "evidence": [{"detail": [{"reference": "QuestionnaireResponse/hunger-vital-sign"}]}],
}


def test_messy_condition_maps_domain_and_status_and_keeps_the_rest() -> None:
    imported = import_condition(MESSY_CONDITION)
    need = imported.record
    assert need.domain.value == "food"
    assert need.status.value == "resolved"
    assert need.description == "Skips meals at the end of the month"
    assert {"evidence", "clinicalStatus", "recordedDate"} <= set(need.fhir_extras["received"])
    exported = condition_resource(need, imported.context)
    assert normalised(MESSY_CONDITION, exported) == MESSY_CONDITION


def test_whole_case_import_keeps_foreign_content_of_each_resource() -> None:
    case = GOLDEN_CASES["behavioral_health"]()
    resources = [dict(r.resource) for r in project_case(case)]
    goal = next(r for r in resources if r["resourceType"] == "Goal")
    goal["extension"] = [{"url": "http://ehr.example.org/fhir/x", "valueBoolean": True}]
    imported = import_case(resources, RECEIVED_AT)
    again = {r.reference: r.resource for r in project_case(imported)}
    assert again[f"Goal/{goal['id']}"]["extension"] == goal["extension"]
    assert imported.goals[0].fhir_extras["received"] == {"extension": goal["extension"]}


def test_a_case_bundle_with_a_foreign_resource_type_is_rejected() -> None:
    case = GOLDEN_CASES["social_work"]()
    resources = [r.resource for r in project_case(case)]
    resources.append({"resourceType": "Observation", "id": "o1", "status": "final"})
    with pytest.raises(ResourceRejected) as raised:
        import_case(resources, RECEIVED_AT)
    assert raised.value.outcome["issue"][0]["expression"] == ["Bundle.entry.resource"]


Invalid = tuple[str, Callable[[JsonDict], Any], JsonDict, str]
INVALID: list[Invalid] = [
    (
        "bad lifecycle code",
        import_goal,
        {**MESSY_GOAL, "lifecycleStatus": "finished"},
        "Goal.lifecycleStatus",
    ),
    (
        "missing subject",
        import_goal,
        {k: v for k, v in MESSY_GOAL.items() if k != "subject"},
        "Goal.subject",
    ),
    (
        "bad date in a target",
        import_goal,
        {**MESSY_GOAL, "target": [{"dueDate": "next tuesday"}]},
        "Goal.target[0].dueDate",
    ),
    ("unknown element", import_goal, {**MESSY_GOAL, "colour": "blue"}, "Goal.colour"),
    (
        "subject is not a patient",
        import_goal,
        {**MESSY_GOAL, "subject": {"reference": "Group/g1"}},
        "Goal.subject",
    ),
    (
        "wrong resource type",
        import_service_request,
        MESSY_GOAL,
        "ServiceRequest.resourceType",
    ),
    (
        "bad intent",
        import_service_request,
        {
            "resourceType": "ServiceRequest",
            "id": "x",
            "status": "active",
            "intent": "wish",
            "subject": {"reference": "Patient/p"},
        },
        "ServiceRequest.intent",
    ),
    (
        "bad care plan status",
        lambda r: import_care_plan(r, RECEIVED_AT),
        {
            "resourceType": "CarePlan",
            "id": "cp",
            "status": "finished",
            "intent": "plan",
            "subject": {"reference": "Patient/p"},
        },
        "CarePlan.status",
    ),
]


@pytest.mark.parametrize(
    ("label", "importer", "resource", "expression"),
    INVALID,
    ids=lambda x: x if isinstance(x, str) and " " in x else "",
)
def test_invalid_input_is_rejected_at_the_element(
    label: str, importer: Callable[[JsonDict], Any], resource: JsonDict, expression: str
) -> None:
    with pytest.raises(ResourceRejected) as raised:
        importer(resource)
    outcome = raised.value.outcome
    assert outcome["resourceType"] == "OperationOutcome"
    expressions = [e for i in outcome["issue"] for e in i["expression"]]
    assert expression in expressions, (label, outcome)
    from mappings.fhir import OperationOutcome

    OperationOutcome.model_validate(outcome)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_reimporting_a_reexport_is_stable(path: Path) -> None:
    if path.stem in REFUSED:
        return  # test_official_example_round_trips checks the refusal
    first = reexport(load(path))
    second = reexport(first)
    if first["resourceType"] == "CareTeam":
        second["id"] = first["id"] = ""
        second["identifier"] = [i for i in second["identifier"] if i not in first["identifier"]]
        first["identifier"] = []
    assert {k: v for k, v in second.items() if k != "identifier"} == {
        k: v for k, v in first.items() if k != "identifier"
    }


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_resources_imported_one_by_one_reexport_unchanged(name: str) -> None:
    case = GOLDEN_CASES[name]()
    for projected in project_case(case):
        resource = projected.resource
        if resource["resourceType"] in {"Patient", "CareTeam"}:
            continue
        exported = reexport(resource)
        assert normalised(resource, exported) == resource, projected.reference


def test_a_received_provenance_is_accepted_verbatim_or_rejected() -> None:
    provenance = load(DATA / "us-core" / "Provenance-example-targeted-provenance.json")
    assert accept_provenance(provenance) == load(
        DATA / "us-core" / "Provenance-example-targeted-provenance.json"
    )
    with pytest.raises(ResourceRejected) as raised:
        accept_provenance({**provenance, "recorded": "yesterday"})
    assert raised.value.outcome["issue"][0]["expression"] == ["Provenance.recorded"]


@pytest.mark.parametrize(
    ("coding", "domain"),
    [
        ({"system": "http://snomed.info/sct", "code": "1156191002"}, "housing"),
        ({"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z59.82"}, "transportation"),
        ({"system": "http://snomed.info/sct", "code": "445281000124101"}, "food"),
        ({"system": "http://snomed.info/sct", "code": "84114007"}, "medical"),
    ],
)
def test_an_sdoh_tagged_concern_lands_in_the_domain_of_its_code(
    coding: dict[str, str], domain: str
) -> None:
    """US Core tags an SDOH concern with the `sdoh` category and codes the finding (its
    condition-SDOH-example); no SDOHCC category is needed to find the domain."""
    resource = {
        "resourceType": "Condition",
        "id": "sdoh-1",
        "category": [
            {"coding": [{"system": US_CORE_CONDITION_CATEGORY, "code": "health-concern"}]},
            {"coding": [{"system": US_CORE_CATEGORY, "code": "sdoh"}]},
        ],
        "code": {"coding": [coding], "text": "A concern"},
        "subject": {"reference": "Patient/p1"},
    }
    assert import_condition(resource).record.domain.value == domain
