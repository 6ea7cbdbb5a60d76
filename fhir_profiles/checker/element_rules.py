"""A profile's snapshot compiled into a tree of element rules, once per profile.

The snapshot is flat; the checker needs, for each element, its children and its slices. Element
ids carry that structure (`Provenance.agent:ProvenanceAuthor.type` is the `type` child of the
`ProvenanceAuthor` slice of `Provenance.agent`), so the tree is built from ids, not paths.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Final

from fhir_profiles.artifacts import (
    ArtifactNotFoundError,
    Canonical,
    JSONObject,
    artifact_versions,
    load_structure_definition,
)
from fhir_profiles.checker.invariants import Invariant, compile_invariant


@dataclass(frozen=True)
class Slicing:
    discriminators: tuple[tuple[str, str], ...]
    """(type, path) pairs, e.g. ("pattern", "$this") or ("value", "url")."""
    rules: str


@dataclass
class ElementRule:
    id: str
    path: str
    name: str
    """Last path segment: `category`, `due[x]`."""
    slice_name: str | None
    min: int
    max: int | None
    """None means unbounded (`*`)."""
    is_array: bool
    """The base element repeats (base max is not 1), so its JSON value is an array."""
    type_codes: tuple[str, ...]
    type_profiles: tuple[str, ...]
    target_profiles: tuple[str, ...]
    fixed: Any | None
    pattern: Any | None
    required_value_set: str | None
    must_support: bool
    invariants: tuple[Invariant, ...]
    slicing: Slicing | None
    content_reference: str | None = None
    """The element id this one repeats (`Provenance.entity.agent` -> `Provenance.agent`)."""
    children: list[ElementRule] = field(default_factory=list)
    slices: list[ElementRule] = field(default_factory=list)

    @property
    def is_choice(self) -> bool:
        return self.name.endswith("[x]")

    def json_keys(self) -> tuple[str, ...]:
        """The JSON property names this element may appear under."""
        return tuple(self._key_types)

    @functools.cached_property
    def _key_types(self) -> dict[str, str | None]:
        """JSON property name -> datatype of its value (None for backbone elements)."""
        if self.is_choice:
            stem = self.name[:-3]
            return {stem + code[0].upper() + code[1:]: code for code in self.type_codes}
        single = len(self.type_codes) == 1 and self.type_codes[0] not in (
            "BackboneElement",
            "Element",
        )
        return {self.name: self.type_codes[0] if single else None}

    @functools.cached_property
    def can_be_required(self) -> bool:
        """Its absence can be an error: it or one of its slices has a minimum."""
        return self.min > 0 or any(slice_rule.min > 0 for slice_rule in self.slices)

    @property
    def fhirpath_type(self) -> str:
        """What fhirpathpy's model knows this element as: its datatype, or its path."""
        if (
            len(self.type_codes) == 1
            and self.type_codes[0][0].isupper()
            and self.type_codes[0] not in ("BackboneElement", "Element", "Resource")
        ):
            return self.type_codes[0]
        return self.path

    def type_of_key(self, key: str) -> str | None:
        """The datatype of the value found under JSON property `key` (None for backbones)."""
        return self._key_types.get(key)

    @property
    def structure_context(self) -> str:
        """What the base R4 structure knows this element's value as: datatype or element path."""
        if len(self.type_codes) == 1 and self.type_codes[0] not in ("BackboneElement", "Element"):
            return self.type_codes[0]
        return self.content_reference or self.path

    def child(self, name: str) -> ElementRule | None:
        return next((c for c in self.children if c.name == name), None)


@dataclass(frozen=True)
class CompiledProfile:
    url: str
    version: str
    resource_type: str
    root: ElementRule
    rules_by_id: dict[str, ElementRule]

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"

    def not_evaluable_invariants(self) -> list[tuple[str, Invariant]]:
        """(element id, invariant) for every error invariant the checker skips."""
        return [
            (element_id, invariant)
            for element_id, rule in self.rules_by_id.items()
            for invariant in rule.invariants
            if invariant.evaluator is None
        ]


def _value_with_prefix(element: JSONObject, prefix: str) -> Any | None:
    return next((v for k, v in element.items() if k.startswith(prefix)), None)


_FHIR_TYPE_EXTENSION: Final = (
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
)


def _type_code(element_type: JSONObject) -> str:
    """The FHIR type of a `type` entry.

    `Resource.id` and `Extension.url` are typed `http://hl7.org/fhirpath/System.String` with
    their FHIR type (`id`, `uri`) in an extension; without one, `System.String` remains.
    """
    for extension in element_type.get("extension", []):
        if extension.get("url") == _FHIR_TYPE_EXTENSION:
            return str(extension.get("valueUrl") or extension.get("valueUri"))
    return str(element_type["code"]).removeprefix("http://hl7.org/fhirpath/")


def _rule(element: JSONObject) -> ElementRule:
    binding = element.get("binding", {})
    types = element.get("type", [])
    return ElementRule(
        id=element["id"],
        path=element["path"],
        name=element["path"].rsplit(".", 1)[-1],
        slice_name=element.get("sliceName"),
        min=element.get("min", 0),
        max=None if element.get("max", "*") == "*" else int(element["max"]),
        is_array=element.get("base", element).get("max", "*") != "1",
        type_codes=tuple(_type_code(t) for t in types),
        type_profiles=tuple(p for t in types for p in t.get("profile", [])),
        target_profiles=tuple(p for t in types for p in t.get("targetProfile", [])),
        fixed=_value_with_prefix(element, "fixed"),
        pattern=_value_with_prefix(element, "pattern"),
        required_value_set=binding.get("valueSet")
        if binding.get("strength") == "required"
        else None,
        must_support=element.get("mustSupport", False),
        # Warning-level constraints (dom-6 and the like) are advice, not conformance.
        invariants=tuple(
            compile_invariant(c) for c in element.get("constraint", []) if c["severity"] == "error"
        ),
        slicing=(
            Slicing(
                tuple((d["type"], d["path"]) for d in element["slicing"].get("discriminator", [])),
                element["slicing"].get("rules", "open"),
            )
            if "slicing" in element
            else None
        ),
        content_reference=(
            element["contentReference"].partition("#")[2] if "contentReference" in element else None
        ),
    )


def compile_structure_definition(structure_definition: JSONObject) -> CompiledProfile:
    elements = structure_definition["snapshot"]["element"]
    rules_by_id: dict[str, ElementRule] = {}
    for element in elements:
        rule = _rule(element)
        rules_by_id[rule.id] = rule
        if rule.slice_name is not None and rule.id.endswith(":" + rule.slice_name):
            rules_by_id[rule.id[: -len(rule.slice_name) - 1]].slices.append(rule)
        elif "." in rule.id:
            rules_by_id[rule.id.rsplit(".", 1)[0]].children.append(rule)
    for rule in rules_by_id.values():
        if rule.content_reference is not None:
            rule.children = rules_by_id[rule.content_reference].children
    return CompiledProfile(
        url=structure_definition["url"],
        version=structure_definition.get("version", ""),
        resource_type=structure_definition["type"],
        root=rules_by_id[elements[0]["id"]],
        rules_by_id=rules_by_id,
    )


@functools.cache
def _compiled(url: str, version: str) -> CompiledProfile:
    return compile_structure_definition(load_structure_definition(url, version))


def compiled_profile(canonical: str) -> CompiledProfile:
    """The compiled profile for `url` or `url|version` (newest shipped when unversioned)."""
    parsed = Canonical.parse(canonical)
    versions = artifact_versions("StructureDefinition", parsed.url)
    if not versions:
        raise ArtifactNotFoundError(f"no StructureDefinition {canonical} is shipped")
    return _compiled(parsed.url, parsed.version or versions[-1])
