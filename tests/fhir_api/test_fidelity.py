"""What a client sends is what it gets back, or it is told (docs/fidelity.md).

Bodies are sent and read as bytes and parsed with `fhir_json.loads`, so a decimal's text is
compared as it is (`1.50` is not `1.5`); the structural diff here is written independently of
`mappings.unkept_elements`, which produces the warnings it checks against.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from mappings import fhir_json
from tests.fhir_api.conftest import SetScopes

EXAMPLES = Path(__file__).parents[1] / "mappings" / "data"
CASE_TYPES = ("Patient", "CarePlan", "Goal", "ServiceRequest", "Condition", "CareTeam")
PATIENT = "urn:uuid:00000000-0000-4000-8000-0000000000a1"
PLAN = "urn:uuid:00000000-0000-4000-8000-0000000000a2"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
AUTHORED = (
    '<div xmlns="http://www.w3.org/1999/xhtml"><p>Referred by Dr. Ames after the home '
    "visit; the family asked for mornings.</p></div>"
)


def minimal_patient() -> dict[str, Any]:
    return {
        "fullUrl": PATIENT,
        "resource": {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-FID-1"}],
            "name": [{"family": "Adeyemi", "given": ["Tola"]}],
        },
        "request": {"method": "POST", "url": "Patient"},
    }


def minimal_plan() -> dict[str, Any]:
    return {
        "fullUrl": PLAN,
        "resource": {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": PATIENT},
        },
        "request": {"method": "POST", "url": "CarePlan"},
    }


def transaction(*entries: dict[str, Any]) -> bytes:
    return fhir_json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def entry(resource: dict[str, Any], full_url: str) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def lookup(value: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a `Type.a[0].b` path of a resource."""
    for part in path.split(".")[1:]:
        name, _, rest = part.partition("[")
        if not isinstance(value, dict) or name not in value:
            return False, None
        value = value[name]
        for index in [int(i) for i in rest.rstrip("]").split("][") if i] if rest else []:
            if not isinstance(value, list) or index >= len(value):
                return False, None
            value = value[index]
    return True, value


def same(sent: Any, got: Any) -> bool:
    return type(sent) is type(got) and (
        str(sent) == str(got) if isinstance(sent, Decimal) else sent == got
    )


def not_given_back(sent: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Paths of the leaves of `sent` that `got` lacks or holds differently; the server's own
    `id`, `meta.versionId` and `meta.lastUpdated` (FHIR R4 §3.1.0.1.4) are not compared."""
    kind = sent["resourceType"]
    skipped = (f"{kind}.id", f"{kind}.meta.versionId", f"{kind}.meta.lastUpdated")
    missing = []
    for path, value in leaves(sent, kind):
        if path in skipped or path == f"{kind}.resourceType":
            continue
        found, there = lookup(got, path)
        if not found or not same(value, there):
            missing.append(path)
    return missing


def covered(path: str, warned: list[str]) -> bool:
    """A leaf is reported when a warning names it or an element that contains it."""
    return any(path == w or path.startswith((w + ".", w + "[")) for w in warned)


def example(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = fhir_json.loads((EXAMPLES / name).read_bytes())
    return parsed


def official_examples() -> list[str]:
    return sorted(
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.glob("*/*.json")
        if p.name.split("-")[0] in CASE_TYPES
    )


def with_patient_references(value: Any) -> Any:
    """The example about our transaction's patient: its `Patient/...` references point there."""
    if isinstance(value, dict):
        copied = {k: with_patient_references(v) for k, v in value.items()}
        target = value.get("reference")
        if isinstance(target, str) and target.startswith("Patient/"):
            copied["reference"] = PATIENT
        return copied
    if isinstance(value, list):
        return [with_patient_references(v) for v in value]
    return value


def resolved(sent: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """`sent` as the transaction resolves it: our urn:uuid is the stored patient."""
    text = json.dumps(sent, default=str).replace(PATIENT, f"Patient/{patient_id}")
    restored: dict[str, Any] = fhir_json.loads(text.encode())
    # json.dumps wrote decimals as strings: put the sent decimals back.
    for path, value in leaves(sent, sent["resourceType"]):
        if isinstance(value, Decimal):
            _set(restored, path, value)
    return restored


def _set(resource: dict[str, Any], path: str, value: Any) -> None:
    parent_path, _, last = path.rpartition(".")
    _, parent = lookup(resource, parent_path) if "." in parent_path else (True, resource)
    name, _, rest = last.partition("[")
    if rest:
        parent[name][int(rest.rstrip("]"))] = value
    else:
        parent[name] = value


async def test_the_observed_losses_are_gone(fhir: httpx.AsyncClient, scopes: SetScopes) -> None:
    """The cases the issue reports: a date-only authoredOn, an offset, an author narrative and
    decimals (`1.50`, `0.1000`, a huge one) come back as sent."""
    referral: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "text": {"status": "additional", "div": AUTHORED},
        "status": "active",
        "intent": "order",
        "code": {"text": "Home physical therapy"},
        "subject": {"reference": PATIENT},
        "occurrencePeriod": {"start": "2013-03-08T09:00:10+01:00", "end": "2013-04"},
        "authoredOn": "2017-03-05",
    }
    goal: dict[str, Any] = {
        "resourceType": "Goal",
        "extension": [
            {"url": "https://planner.example.org/fx/score", "valueDecimal": Decimal("0.1000")},
            {
                "url": "https://planner.example.org/fx/big",
                "valueDecimal": Decimal("12345678901234567890.123456789"),
            },
        ],
        "lifecycleStatus": "active",
        "description": {"text": "Walk 1.5 km"},
        "subject": {"reference": PATIENT},
        "startDate": "2017",
        "target": [
            {
                "measure": {"text": "distance"},
                "detailQuantity": {"value": Decimal("1.50"), "unit": "km"},
                "dueDate": "2027-02-15",
            }
        ],
    }
    body = transaction(
        minimal_patient(),
        entry(referral, "urn:uuid:00000000-0000-4000-8000-0000000000b1"),
        entry(goal, "urn:uuid:00000000-0000-4000-8000-0000000000b2"),
        minimal_plan(),
    )
    response = await fhir.post("http://testserver/fhir", content=body, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    answer = fhir_json.loads(response.content)
    for sent, result in zip((referral, goal), answer["entry"][1:3], strict=True):
        location = result["response"]["location"].split("/_history")[0]
        got = fhir_json.loads((await fhir.get(f"/{location}")).content)
        assert "outcome" not in result["response"], result["response"]["outcome"]
        patient_id = answer["entry"][0]["response"]["location"].split("/")[1]
        assert not_given_back(resolved(sent, patient_id), got) == []
    raw = (await fhir.get(f"/{answer['entry'][2]['response']['location']}")).content
    assert b'"value":1.50' in raw
    assert b'"valueDecimal":0.1000' in raw
    assert b'"valueDecimal":12345678901234567890.123456789' in raw


async def test_a_case_edit_wins_over_the_sent_form(
    fhir: httpx.AsyncClient, client: httpx.AsyncClient, scopes: SetScopes
) -> None:
    """Once the case changes the value, its canonical form is written (no stale lexical form),
    and a generated narrative is regenerated; an authored one stays."""
    goal: dict[str, Any] = {
        "resourceType": "Goal",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "lifecycleStatus": "active",
        "description": {"text": "Walk"},
        "subject": {"reference": PATIENT},
        "target": [{"measure": {"text": "distance"}, "dueDate": "2027-02"}],
    }
    body = transaction(
        minimal_patient(),
        entry(goal, "urn:uuid:00000000-0000-4000-8000-0000000000c1"),
        minimal_plan(),
    )
    response = await fhir.post("http://testserver/fhir", content=body, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    answer = fhir_json.loads(response.content)
    goal_id = answer["entry"][1]["response"]["location"].split("/")[1]
    case_id = answer["entry"][2]["response"]["location"].split("/")[1]
    before = (await fhir.get(f"/Goal/{goal_id}")).json()
    assert before["target"][0]["dueDate"] == "2027-02"
    assert before["text"] == goal["text"]

    current = await client.get(f"/api/cases/{case_id}/goals/{goal_id}")
    edit = {"target": {**current.json()["target"], "due_date": "2027-05-20"}}
    headers = {"If-Match": current.headers["etag"]}
    changed = await client.patch(
        f"/api/cases/{case_id}/goals/{goal_id}", json=edit, headers=headers
    )
    assert changed.status_code == 200, changed.text
    after = (await fhir.get(f"/Goal/{goal_id}")).json()
    assert after["target"][0]["dueDate"] == "2027-05-20"
    assert after["text"]["status"] == "generated"
    assert after["text"]["div"] != goal["text"]["div"]


async def test_prefer_operation_outcome_names_what_was_not_kept(
    fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    """A ServiceRequest PUT with an element the case does not take as sent (the subject's
    display is the case's patient's name): the answer is a warning naming it, not silence;
    the offset of authoredOn survives."""
    referral = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"text": "Meals"},
        "subject": {"reference": PATIENT},
        "authoredOn": "2013-03-08T09:00:10+01:00",
    }
    body = transaction(
        minimal_patient(),
        entry(referral, "urn:uuid:00000000-0000-4000-8000-0000000000d1"),
        minimal_plan(),
    )
    answer = fhir_json.loads(
        (await fhir.post("http://testserver/fhir", content=body, headers=FHIR_JSON)).content
    )
    location = answer["entry"][1]["response"]["location"].split("/_history")[0]
    stored = fhir_json.loads((await fhir.get(f"/{location}")).content)
    assert stored["authoredOn"] == "2013-03-08T09:00:10+01:00"
    # An element the case owns (meta.versionId is the server's, not reported): send a
    # different `subject.display`, which the case takes from its patient.
    changed = copy.deepcopy(stored)
    changed["subject"]["display"] = "Someone else"
    response = await fhir.put(
        f"/{location}",
        content=fhir_json.dumps(changed),
        headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"},
    )
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    warned = [i["expression"][0] for i in outcome["issue"] if i["severity"] == "warning"]
    after = fhir_json.loads((await fhir.get(f"/{location}")).content)
    assert not_given_back(changed, after) == warned
    assert "ServiceRequest.subject.display" in warned


@pytest.mark.parametrize("name", official_examples())
async def test_official_example_comes_back_or_is_reported(
    fhir: httpx.AsyncClient, scopes: SetScopes, name: str
) -> None:
    """Each official example of the six types, sent in a transaction with a Patient (and a
    CarePlan, since a lone Goal, ServiceRequest, Condition or CareTeam needs its case today):
    every element comes back equal, or the transaction's entry outcome warns about it by name,
    or the whole transaction is refused with an OperationOutcome naming the element. Then the
    same for a PUT of the example onto what was stored, where the type can be updated."""
    sent = with_patient_references(example(name))
    sent.pop("id", None)
    kind = sent["resourceType"]
    entries = [minimal_patient(), entry(sent, "urn:uuid:00000000-0000-4000-8000-0000000000e1")]
    if kind != "CarePlan":
        entries.append(minimal_plan())
    response = await fhir.post(
        "http://testserver/fhir", content=transaction(*entries), headers=FHIR_JSON
    )
    if response.status_code != 200:
        refused = response.json()
        assert refused["resourceType"] == "OperationOutcome"
        assert all(issue.get("expression") for issue in refused["issue"]), refused
        return
    answer = fhir_json.loads(response.content)
    patient_id = answer["entry"][0]["response"]["location"].split("/")[1]
    result = answer["entry"][1]["response"]
    location = result["location"].split("/_history")[0]
    got = fhir_json.loads((await fhir.get(f"/{location}")).content)
    warned = [i["expression"][0] for i in (result.get("outcome") or {}).get("issue", [])]
    silent = [p for p in not_given_back(resolved(sent, patient_id), got) if not covered(p, warned)]
    assert silent == [], f"changed without a warning: {silent}"

    if kind not in ("CarePlan", "Goal", "ServiceRequest"):
        return
    again = {**resolved(sent, patient_id), "id": location.split("/")[1]}
    put = await fhir.put(
        f"/{location}",
        content=fhir_json.dumps(again),
        headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"},
    )
    if put.status_code != 200:
        # Refused with a reason: an element named, or the resource's state (a closed case's
        # records are final: 409).
        refused = put.json()
        assert refused["resourceType"] == "OperationOutcome"
        assert all(i.get("expression") or i["code"] == "conflict" for i in refused["issue"])
        return
    warned = [i["expression"][0] for i in put.json()["issue"] if i["severity"] == "warning"]
    got = fhir_json.loads((await fhir.get(f"/{location}")).content)
    silent = [p for p in not_given_back(again, got) if not covered(p, warned)]
    assert silent == [], f"changed without a warning on PUT: {silent}"
