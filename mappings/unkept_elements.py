"""Never changed in silence: the elements of a received resource that the stored one does not
give back as sent, as OperationOutcome warnings naming each element (FHIRPath).

The mappings keep what they can (mapped elements, `fhir_extras`, `as_sent` lexical forms, the
sender's narrative and meta); whatever a write still changes (a domain rule that sets a status,
a CareTeam that takes the case's id, an element the case owns) is found here by walking the
received and the stored JSON side by side, after the write, so nothing escapes the report.

Not reported, because FHIR gives them to the server (R4 §3.1.0.1.4 create and §3.1.0.4
update: the server assigns `id` on create and `meta.versionId` / `meta.lastUpdated` always):
`id`, `meta.versionId`, `meta.lastUpdated`. Additions (elements or list items the service
adds, such as its identifier or a category) are not losses and are not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from mappings.fhir_datatypes import JsonDict

SERVER_ASSIGNED = frozenset({"id", "meta.versionId", "meta.lastUpdated"})


def warning(expression: str, diagnostics: str) -> JsonDict:
    return {
        "severity": "warning",
        "code": "informational",
        "diagnostics": diagnostics,
        "expression": [expression],
    }


def unkept_elements(received: Mapping[str, Any], stored: Mapping[str, Any]) -> list[JsonDict]:
    """A warning for each element of `received` that `stored` lacks or holds differently.

    Both should be parsed with `mappings.fhir_json.loads`, so decimals compare by their text.
    """
    resource_type = str(received.get("resourceType"))
    issues: list[JsonDict] = []
    for key, value in received.items():
        if key == "resourceType" or key in SERVER_ASSIGNED:
            continue
        _compare(value, stored.get(key), key in stored, f"{resource_type}.{key}", key, issues)
    return issues


def _compare(
    sent: Any, kept: Any, present: bool, path: str, plain_path: str, issues: list[JsonDict]
) -> None:
    if plain_path in SERVER_ASSIGNED:
        return
    if not present:
        issues.append(warning(path, f"{path} is not kept"))
    elif isinstance(sent, Mapping):
        if not isinstance(kept, Mapping):
            issues.append(warning(path, f"{path} is not kept as sent"))
            return
        for key, value in sent.items():
            _compare(
                value, kept.get(key), key in kept, f"{path}.{key}", f"{plain_path}.{key}", issues
            )
    elif isinstance(sent, list):
        if not isinstance(kept, list):
            issues.append(warning(path, f"{path} is not kept as sent"))
            return
        for index, value in enumerate(sent):
            there = index < len(kept)
            _compare(
                value,
                kept[index] if there else None,
                there,
                f"{path}[{index}]",
                plain_path,
                issues,
            )
    elif not same_value(sent, kept):
        issues.append(warning(path, f"{path} is not kept as sent"))


def same_value(sent: Any, kept: Any) -> bool:
    """Primitives equal in JSON type and text (`1.50` is not `1.5`, `true` is not `1`)."""
    if type(sent) is not type(kept):
        return False
    if isinstance(sent, Decimal):
        return str(sent) == str(kept)
    return bool(sent == kept)
