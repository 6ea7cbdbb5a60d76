"""Reference targets: does a Reference point at a resource type its element allows?

The allowed types come from the element's `targetProfile`s. A core profile names its type
(`.../StructureDefinition/Group`), a shipped profile states it, and a US Core profile not shipped
here is read from its name (`us-core-practitionerrole` -> PractitionerRole). When any target
cannot be resolved to a type, or the reference does not reveal its type (`urn:uuid:`, a logical
`identifier` only), nothing is reported.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from fhir_profiles.artifacts import ArtifactNotFoundError, JSONObject, load_structure_definition
from fhir_profiles.checker.structure import is_resource_type, resource_type_names

_CORE_PROFILE: Final = "http://hl7.org/fhir/StructureDefinition/"
_US_CORE_PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
_LITERAL: Final = re.compile(
    r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)


def _us_core_type(name: str) -> str | None:
    by_lower_name = {type_name.lower(): type_name for type_name in resource_type_names()}
    return by_lower_name.get(name.split("-", 1)[0])


@functools.cache
def _target_type(target_profile: str) -> str | None:
    url = target_profile.partition("|")[0]
    if url.startswith(_CORE_PROFILE) and is_resource_type(url[len(_CORE_PROFILE) :]):
        return url[len(_CORE_PROFILE) :]
    try:
        return str(load_structure_definition(target_profile)["type"])
    except ArtifactNotFoundError:
        pass
    if url.startswith(_US_CORE_PROFILE):
        return _us_core_type(url[len(_US_CORE_PROFILE) :])
    return None


@functools.cache
def allowed_types(target_profiles: tuple[str, ...]) -> frozenset[str] | None:
    """Resource types the targets allow; None when any is unknown or allows every resource."""
    types = {_target_type(profile) for profile in target_profiles}
    if None in types or "Resource" in types or "DomainResource" in types:
        return None
    return frozenset(t for t in types if t is not None)


def referenced_type(reference: JSONObject, resource: JSONObject) -> str | None:
    """The type a Reference points at, when the JSON reveals it."""
    stated = reference.get("type")
    if isinstance(stated, str):
        name = stated.removeprefix(_CORE_PROFILE)
        return name if is_resource_type(name) else None
    literal = reference.get("reference")
    if not isinstance(literal, str):
        return None
    if literal.startswith("#"):
        contained: list[Any] = resource.get("contained") or []
        found = next(
            (c for c in contained if isinstance(c, dict) and c.get("id") == literal[1:]), None
        )
        return found.get("resourceType") if found is not None else None
    match = _LITERAL.search(literal)
    if match is None or literal.startswith(("urn:", "#")):
        return None
    return match.group(1) if is_resource_type(match.group(1)) else None
