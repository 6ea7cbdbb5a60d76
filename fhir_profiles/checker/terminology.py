"""Expanding required-binding ValueSets from the shipped ValueSets and CodeSystems only.

A ValueSet is enumerable when every `compose.include` either lists its concepts, names a whole
CodeSystem shipped here with `content: complete`, or imports a ValueSet that is itself
enumerable. Anything else (SNOMED/LOINC filters, CodeSystems we do not ship, such as all of
SNOMED CT) makes the ValueSet not enumerable: the checker then reports nothing for the binding,
because it cannot tell a wrong code from a right one without a terminology server.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

from fhir_profiles.artifacts import (
    Canonical,
    JSONObject,
    has_artifact,
    load_code_system,
    load_value_set,
)


@dataclass(frozen=True)
class ExpandedValueSet:
    url: str
    codings: frozenset[tuple[str, str]]
    """(system, code) pairs."""

    def contains_code(self, code: str) -> bool:
        """For `code` elements, which carry no system."""
        return any(known == code for _, known in self.codings)

    def contains_coding(self, system: str | None, code: str | None) -> bool:
        return (system, code) in self.codings if system and code else False


def _concepts(concepts: list[JSONObject]) -> Iterator[str]:
    for concept in concepts:
        yield concept["code"]
        yield from _concepts(concept.get("concept", []))


def _shipped_version(
    resource_type: str, canonical: Canonical, package_version: str | None
) -> str | None:
    """The pinned version, else the referencing package's version, else None (= newest)."""
    version = canonical.version or package_version
    return version if version and has_artifact(resource_type, canonical.url, version) else None


def _code_system_codes(system: str, package_version: str | None) -> frozenset[str] | None:
    canonical = Canonical.parse(system)
    if not has_artifact("CodeSystem", canonical.url):
        return None
    code_system = load_code_system(
        canonical.url, _shipped_version("CodeSystem", canonical, package_version)
    )
    if code_system.get("content") != "complete":
        return None
    return frozenset(_concepts(code_system.get("concept", [])))


def _component(
    component: JSONObject, package_version: str | None
) -> frozenset[tuple[str, str]] | None:
    if "filter" in component:
        return None
    codings: set[tuple[str, str]] = set()
    system = component.get("system")
    if system is not None:
        if "concept" in component:
            codes: frozenset[str] | None = frozenset(c["code"] for c in component["concept"])
        else:
            codes = _code_system_codes(system, package_version)
        if codes is None:
            return None
        # Some published ValueSets pin `system|version`; the coding carries the bare URL.
        codings |= {(Canonical.parse(system).url, code) for code in codes}
    for imported in component.get("valueSet", []):
        expansion = expand_value_set(imported, package_version)
        if expansion is None:
            return None
        # compose semantics: an include with both system and valueSet is their intersection.
        codings = set(expansion.codings) if system is None else codings & expansion.codings
    return frozenset(codings)


@functools.cache
def expand_value_set(reference: str, package_version: str | None = None) -> ExpandedValueSet | None:
    """All (system, code) pairs of the ValueSet, or None when it is not enumerable here.

    An unversioned reference from a profile resolves to the ValueSet of the profile's own
    package version when we ship it (US Core 6.1.0 binds to 6.1.0's ValueSet), else the newest.
    """
    canonical = Canonical.parse(reference)
    if not has_artifact("ValueSet", canonical.url):
        return None
    value_set = load_value_set(
        canonical.url, _shipped_version("ValueSet", canonical, package_version)
    )
    compose = value_set.get("compose", {})
    included: set[tuple[str, str]] = set()
    for component in compose.get("include", []):
        codings = _component(component, package_version)
        if codings is None:
            return None
        included |= codings
    for component in compose.get("exclude", []):
        codings = _component(component, package_version)
        if codings is None:
            return None
        included -= codings
    return ExpandedValueSet(canonical.url, frozenset(included))
