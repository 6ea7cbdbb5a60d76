"""The shipped conformance files: indexed once, complete, and loaded by canonical and version."""

from __future__ import annotations

import importlib.resources
import json

import pytest

from fhir_profiles.artifacts import (
    DATA_PACKAGES,
    ArtifactNotFoundError,
    Canonical,
    artifact_versions,
    load_structure_definition,
    structure_definition_canonicals,
    us_core_profile_for,
)
from tests.profiles.example_files import US_CORE, US_CORE_VERSIONS

US_CORE_TYPES = (
    "CarePlan",
    "CareTeam",
    "Condition",
    "Goal",
    "Patient",
    "Provenance",
    "ServiceRequest",
)


def test_each_file_is_one_canonical_and_version() -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for package in DATA_PACKAGES:
        for entry in importlib.resources.files(package).iterdir():
            if not entry.name.endswith(".json"):
                continue
            resource = json.loads(entry.read_text(encoding="utf-8"))
            assert entry.name == f"{resource['resourceType']}-{resource['id']}.json"
            key = (resource["resourceType"], resource["url"], resource.get("version", ""))
            assert key not in seen, (entry.name, seen.get(key))
            seen[key] = entry.name
            if package.startswith("fhir_profiles.us_core.v"):
                folder_version = package.rsplit(".v", 1)[1].replace("_", ".")
                assert resource["version"] == folder_version


@pytest.mark.parametrize("canonical", structure_definition_canonicals(), ids=str)
def test_every_structure_definition_has_a_snapshot(canonical: Canonical) -> None:
    definition = load_structure_definition(canonical.url, canonical.version)
    elements = definition["snapshot"]["element"]
    assert elements[0]["id"] == definition["type"]
    assert len({element["id"] for element in elements}) == len(elements)


@pytest.mark.parametrize("version", US_CORE_VERSIONS)
@pytest.mark.parametrize("resource_type", US_CORE_TYPES)
def test_us_core_profile_for_each_type(resource_type: str, version: str) -> None:
    profile = us_core_profile_for(resource_type, version)
    assert profile is not None
    assert profile.startswith(US_CORE)
    assert profile.endswith("|" + version)


def test_no_us_core_profile_for_a_type_we_do_not_ship() -> None:
    assert us_core_profile_for("Observation", "7.0.0") is None


def test_loading_by_version_and_newest() -> None:
    url = f"{US_CORE}us-core-goal"
    assert artifact_versions("StructureDefinition", url) == ["6.1.0", "7.0.0"]
    assert load_structure_definition(url)["version"] == "7.0.0"
    assert load_structure_definition(f"{url}|6.1.0")["version"] == "6.1.0"
    assert load_structure_definition(url, "6.1.0")["version"] == "6.1.0"
    with pytest.raises(ArtifactNotFoundError):
        load_structure_definition(url, "5.0.1")


def test_loaded_copies_are_independent() -> None:
    url = f"{US_CORE}us-core-goal|7.0.0"
    load_structure_definition(url)["snapshot"]["element"].clear()
    assert load_structure_definition(url)["snapshot"]["element"]
