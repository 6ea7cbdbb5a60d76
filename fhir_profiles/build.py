"""Writes the generated conformance files; `python -m fhir_profiles.build [--check]`.

1. The CaseBridge profiles are authored as differentials in `fhir_profiles/casebridge/`. Their
   snapshot is the US Core base snapshot with the differential applied: existing elements are
   constrained in place, new slices are cloned from the element they slice (with its children).
   Only tightening is accepted (min up, max down, types narrowed), as `derivation: constraint`
   requires.
2. The FHIR R4 ValueSets and CodeSystems behind the required bindings we check are written from
   `FHIR_R4_CODE_TABLES` (transcribed from FHIR 4.0.1; a test compares them with the code lists
   fhir.resources carries).
3. US Core ValueSets bound as required but missing from the shared copy of US Core are written
   from `US_CORE_TRANSCRIBED` into `us_core/transcribed/` (unversioned: the same in 6.1.0 and
   7.0.0).

The output is committed; `--check` fails when a committed file differs from what would be written.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from fhir_profiles.artifacts import JSONObject, load_structure_definition

CASEBRIDGE_DIR: Final = Path(str(importlib.resources.files("fhir_profiles.casebridge")))
FHIR_R4_DIR: Final = Path(str(importlib.resources.files("fhir_profiles.fhir_r4")))
US_CORE_TRANSCRIBED_DIR: Final = Path(
    str(importlib.resources.files("fhir_profiles.us_core.transcribed"))
)

# ValueSet id -> (CodeSystem URL, codes), for http://hl7.org/fhir/us/core/ValueSet/<id>.
US_CORE_TRANSCRIBED: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    # CarePlan.text.status: "generated | additional" (US Core 6.1.0 and 7.0.0 alike).
    "us-core-narrative-status": (
        "http://hl7.org/fhir/narrative-status",
        ("generated", "additional"),
    ),
}

# ValueSet id -> (CodeSystem URL, codes). The ValueSet includes exactly these codes; where the
# CodeSystem holds just these codes, a complete CodeSystem is written too.
FHIR_R4_CODE_TABLES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "request-status": (
        "http://hl7.org/fhir/request-status",
        ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"),
    ),
    "request-intent": (
        "http://hl7.org/fhir/request-intent",
        (
            "proposal",
            "plan",
            "directive",
            "order",
            "original-order",
            "reflex-order",
            "filler-order",
            "instance-order",
            "option",
        ),
    ),
    "care-plan-intent": (
        "http://hl7.org/fhir/request-intent",
        ("proposal", "plan", "order", "option"),
    ),
    "request-priority": (
        "http://hl7.org/fhir/request-priority",
        ("routine", "urgent", "asap", "stat"),
    ),
    "care-plan-activity-kind": (
        "http://hl7.org/fhir/resource-types",
        (
            "Appointment",
            "CommunicationRequest",
            "DeviceRequest",
            "MedicationRequest",
            "NutritionOrder",
            "Task",
            "ServiceRequest",
            "VisionPrescription",
        ),
    ),
    "care-plan-activity-status": (
        "http://hl7.org/fhir/care-plan-activity-status",
        (
            "not-started",
            "scheduled",
            "in-progress",
            "on-hold",
            "completed",
            "cancelled",
            "stopped",
            "unknown",
            "entered-in-error",
        ),
    ),
    "care-team-status": (
        "http://hl7.org/fhir/care-team-status",
        ("proposed", "active", "suspended", "inactive", "entered-in-error"),
    ),
    "goal-status": (
        "http://hl7.org/fhir/goal-status",
        (
            "proposed",
            "planned",
            "accepted",
            "active",
            "on-hold",
            "completed",
            "cancelled",
            "entered-in-error",
            "rejected",
        ),
    ),
    "condition-clinical": (
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
        ("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
    ),
    "condition-ver-status": (
        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
        ("unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"),
    ),
    "identifier-use": (
        "http://hl7.org/fhir/identifier-use",
        ("usual", "official", "temp", "secondary", "old"),
    ),
    "name-use": (
        "http://hl7.org/fhir/name-use",
        ("usual", "official", "temp", "nickname", "anonymous", "old", "maiden"),
    ),
    "contact-point-system": (
        "http://hl7.org/fhir/contact-point-system",
        ("phone", "fax", "email", "pager", "url", "sms", "other"),
    ),
    "contact-point-use": (
        "http://hl7.org/fhir/contact-point-use",
        ("home", "work", "temp", "old", "mobile"),
    ),
    "administrative-gender": (
        "http://hl7.org/fhir/administrative-gender",
        ("male", "female", "other", "unknown"),
    ),
    "address-use": ("http://hl7.org/fhir/address-use", ("home", "work", "temp", "old", "billing")),
    "address-type": ("http://hl7.org/fhir/address-type", ("postal", "physical", "both")),
    "link-type": ("http://hl7.org/fhir/link-type", ("replaced-by", "replaces", "refer", "seealso")),
    # An example-strength ValueSet in R4, imported by US Core's required ServiceRequest category.
    "servicerequest-category": (
        "http://snomed.info/sct",
        ("108252007", "363679005", "409063005", "409073007", "387713003"),
    ),
    "provenance-entity-role": (
        "http://hl7.org/fhir/provenance-entity-role",
        ("derivation", "revision", "quotation", "source", "removal"),
    ),
}

# These ValueSets take a subset of a larger CodeSystem, so no complete CodeSystem is written.
_PARTIAL_CODE_SYSTEM_VALUE_SETS: Final = frozenset(
    {"care-plan-intent", "care-plan-activity-kind", "servicerequest-category"}
)


class DerivationError(ValueError):
    """A differential loosens or misaddresses its base snapshot."""


def fhir_r4_terminology() -> dict[str, JSONObject]:
    """File name -> ValueSet or CodeSystem, for every entry of FHIR_R4_CODE_TABLES."""
    files: dict[str, JSONObject] = {}
    for value_set_id, (system, codes) in FHIR_R4_CODE_TABLES.items():
        files[f"ValueSet-{value_set_id}.json"] = {
            "resourceType": "ValueSet",
            "id": value_set_id,
            "url": f"http://hl7.org/fhir/ValueSet/{value_set_id}",
            "version": "4.0.1",
            "name": value_set_id,
            "status": "active",
            "description": "Transcribed from FHIR R4 4.0.1 by fhir_profiles.build.",
            "compose": {
                "include": [{"system": system, "concept": [{"code": code} for code in codes]}]
            },
        }
        if value_set_id not in _PARTIAL_CODE_SYSTEM_VALUE_SETS:
            code_system_id = system.rsplit("/", 1)[1]
            files[f"CodeSystem-{code_system_id}.json"] = {
                "resourceType": "CodeSystem",
                "id": code_system_id,
                "url": system,
                "version": "4.0.1",
                "name": code_system_id,
                "status": "active",
                "description": "Transcribed from FHIR R4 4.0.1 by fhir_profiles.build.",
                "content": "complete",
                "concept": [{"code": code} for code in codes],
            }
    return files


def us_core_transcribed_terminology() -> dict[str, JSONObject]:
    """File name -> ValueSet, for every entry of US_CORE_TRANSCRIBED."""
    return {
        f"ValueSet-{value_set_id}.json": {
            "resourceType": "ValueSet",
            "id": value_set_id,
            "url": f"http://hl7.org/fhir/us/core/ValueSet/{value_set_id}",
            "name": value_set_id,
            "status": "active",
            "description": "Transcribed from US Core (6.1.0 and 7.0.0) by fhir_profiles.build.",
            "compose": {
                "include": [{"system": system, "concept": [{"code": code} for code in codes]}]
            },
        }
        for value_set_id, (system, codes) in US_CORE_TRANSCRIBED.items()
    }


def _subtree_end(elements: list[JSONObject], element_id: str) -> int:
    """Index just past the element, its children and its slices (with theirs)."""
    end = next(i for i, e in enumerate(elements) if e["id"] == element_id) + 1
    while end < len(elements) and elements[end]["id"].startswith(
        (element_id + ".", element_id + ":")
    ):
        end += 1
    return end


def _add_slice(elements: list[JSONObject], slice_id: str) -> int:
    sliced_id, _, slice_name = slice_id.rpartition(":")
    if "." in slice_name or not any(e["id"] == sliced_id for e in elements):
        raise DerivationError(f"{slice_id}: only slices of an existing element can be added")
    sliced = next(e for e in elements if e["id"] == sliced_id)
    if "slicing" not in sliced:
        raise DerivationError(f"{slice_id}: {sliced_id} is not sliced")
    clone: list[JSONObject] = []
    for element in elements:
        if element["id"] == sliced_id or element["id"].startswith(sliced_id + "."):
            copied = copy.deepcopy(element)
            copied["id"] = slice_id + element["id"][len(sliced_id) :]
            clone.append(copied)
    clone[0].pop("slicing")
    clone[0]["sliceName"] = slice_name
    clone[0]["min"] = 0  # a slice starts optional; the differential states its own minimum
    position = _subtree_end(elements, sliced_id)
    elements[position:position] = clone
    return position


def _max_value(cardinality: str) -> float:
    return float("inf") if cardinality == "*" else int(cardinality)


def _constrain(element: JSONObject, differential: JSONObject, profile_url: str) -> None:
    where = differential["id"]
    if differential.get("min", element["min"]) < element["min"]:
        raise DerivationError(f"{where}: min {differential['min']} loosens {element['min']}")
    if _max_value(str(differential.get("max", element["max"]))) > _max_value(element["max"]):
        raise DerivationError(f"{where}: max {differential['max']} loosens {element['max']}")
    if "type" in differential:
        allowed = {t["code"] for t in element.get("type", [])}
        if not {t["code"] for t in differential["type"]} <= allowed:
            raise DerivationError(f"{where}: types {differential['type']} widen {allowed}")
    for key, value in differential.items():
        if key in ("id", "path"):
            continue
        if key == "constraint":
            element.setdefault("constraint", []).extend(
                {**constraint, "source": profile_url} for constraint in value
            )
        else:
            element[key] = copy.deepcopy(value)


def build_snapshot(profile: JSONObject) -> list[JSONObject]:
    """The snapshot elements of a `derivation: constraint` profile over a shipped base."""
    base = load_structure_definition(profile["baseDefinition"])
    if base["type"] != profile["type"] or profile.get("derivation") != "constraint":
        raise DerivationError(f"{profile['url']}: only same-type constraints are supported")
    elements: list[JSONObject] = base["snapshot"]["element"]
    for differential in profile["differential"]["element"]:
        position = next((i for i, e in enumerate(elements) if e["id"] == differential["id"]), None)
        if position is None:
            position = _add_slice(elements, differential["id"])
        if elements[position]["path"] != differential["path"]:
            raise DerivationError(f"{differential['id']}: path {differential['path']} mismatch")
        _constrain(elements[position], differential, profile["url"])
    return elements


def _casebridge_profiles() -> Iterator[tuple[str, JSONObject]]:
    for path in sorted(CASEBRIDGE_DIR.glob("StructureDefinition-*.json")):
        yield path.name, json.loads(path.read_text(encoding="utf-8"))


def generated_files() -> dict[Path, JSONObject]:
    """Every generated file with the content it should have."""
    files = {FHIR_R4_DIR / name: resource for name, resource in fhir_r4_terminology().items()}
    for name, resource in us_core_transcribed_terminology().items():
        files[US_CORE_TRANSCRIBED_DIR / name] = resource
    for name, profile in _casebridge_profiles():
        profile["snapshot"] = {"element": build_snapshot(profile)}
        files[CASEBRIDGE_DIR / name] = profile
    return files


def render(resource: JSONObject) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check_only = "--check" in argv
    stale = []
    for path, resource in generated_files().items():
        text = render(resource)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check_only:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(("stale: " if check_only else "wrote: ") + str(path))
    return 1 if check_only and stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
