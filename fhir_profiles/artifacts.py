"""Loading the conformance resources shipped in this package, by canonical URL and version.

Every JSON file in the data packages below is indexed once, on first use. Callers get a deep
copy, so a caller that edits what it loaded cannot corrupt the next caller's copy.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from dataclasses import dataclass
from typing import Any, Final

JSONObject = dict[str, Any]

DATA_PACKAGES: Final = (
    "fhir_profiles.us_core.v6_1_0",
    "fhir_profiles.us_core.v7_0_0",
    "fhir_profiles.us_core.transcribed",
    "fhir_profiles.fhir_r4",
    "fhir_profiles.casebridge",
)


class ArtifactNotFoundError(LookupError):
    """No shipped conformance resource has this canonical URL (and version)."""


@dataclass(frozen=True)
class Canonical:
    """A canonical reference split into its URL and optional `|version`."""

    url: str
    version: str | None = None

    @classmethod
    def parse(cls, reference: str, version: str | None = None) -> Canonical:
        url, _, pinned = reference.partition("|")
        return cls(url, pinned or version)

    def __str__(self) -> str:
        return f"{self.url}|{self.version}" if self.version else self.url


def _version_order(version: str) -> tuple[tuple[int, str], ...]:
    # "10.0.0" sorts after "7.0.0"; non-numeric parts sort as text after numbers.
    return tuple(
        (int(part), "") if part.isdigit() else (1 << 30, part) for part in version.split(".")
    )


@functools.cache
def _index() -> dict[tuple[str, str], dict[str, JSONObject]]:
    """(resourceType, url) -> {version: resource}, for every shipped JSON file."""
    index: dict[tuple[str, str], dict[str, JSONObject]] = {}
    for package in DATA_PACKAGES:
        for entry in importlib.resources.files(package).iterdir():
            if not entry.name.endswith(".json"):
                continue
            resource = json.loads(entry.read_text(encoding="utf-8"))
            by_version = index.setdefault((resource["resourceType"], resource["url"]), {})
            by_version[resource.get("version", "")] = resource
    return index


def _load(resource_type: str, reference: str, version: str | None) -> JSONObject:
    canonical = Canonical.parse(reference, version)
    by_version = _index().get((resource_type, canonical.url), {})
    if canonical.version is None and by_version:
        chosen = by_version[max(by_version, key=_version_order)]
    elif canonical.version in by_version:
        chosen = by_version[canonical.version]
    else:
        raise ArtifactNotFoundError(f"no {resource_type} {canonical} is shipped in fhir_profiles")
    return copy.deepcopy(chosen)


def load_structure_definition(url: str, version: str | None = None) -> JSONObject:
    """The StructureDefinition with this canonical; `url|version` or no version (= newest)."""
    return _load("StructureDefinition", url, version)


def load_value_set(url: str, version: str | None = None) -> JSONObject:
    return _load("ValueSet", url, version)


def load_code_system(url: str, version: str | None = None) -> JSONObject:
    return _load("CodeSystem", url, version)


def has_artifact(resource_type: str, url: str, version: str | None = None) -> bool:
    canonical = Canonical.parse(url, version)
    by_version = _index().get((resource_type, canonical.url), {})
    return bool(by_version) if canonical.version is None else canonical.version in by_version


def artifact_versions(resource_type: str, url: str) -> list[str]:
    """Versions shipped for a canonical URL, oldest first."""
    return sorted(_index().get((resource_type, url), {}), key=_version_order)


def structure_definition_canonicals() -> list[Canonical]:
    """Every shipped StructureDefinition as `url|version`, in a stable order."""
    return sorted(
        (
            Canonical(url, version)
            for (resource_type, url), by_version in _index().items()
            if resource_type == "StructureDefinition"
            for version in by_version
        ),
        key=str,
    )


def us_core_profile_for(resource_type: str, us_core_version: str) -> str | None:
    """The canonical `url|version` of the US Core profile constraining this resource type.

    Only the profiles shipped here count (one per type: for Condition that is
    problems-health-concerns, the one the service produces).
    """
    for (kind, url), by_version in _index().items():
        resource = by_version.get(us_core_version)
        if (
            kind == "StructureDefinition"
            and resource is not None
            and url.startswith("http://hl7.org/fhir/us/core/StructureDefinition/")
            and resource.get("type") == resource_type
            and resource.get("kind") == "resource"
        ):
            return f"{url}|{us_core_version}"
    return None
