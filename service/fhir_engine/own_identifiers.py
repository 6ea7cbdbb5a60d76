"""Identifiers in the service's own systems (`mappings.canonical.IDENTIFIER_SYSTEM`, under
`https://casebridge.dev/fhir/sid/`) are the service's to assign: each names exactly one record
(a case, a goal, an intervention, …), and conditional writes here and in the EHRs are keyed on
them. A client may send back the one its resource already carries (a read-modify-write keeps
it), but never one that names another record, or any at all on a new resource: otherwise a
search on that identifier would find two resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.canonical import IDENTIFIER_SYSTEM
from service.errors import UnprocessableEntity

OWN_SYSTEMS = frozenset(IDENTIFIER_SYSTEM.values())


class ForeignOwnIdentifier(UnprocessableEntity):
    title = "An identifier in CaseBridge's own system is assigned by CaseBridge"


def refuse_foreign_own_identifiers(
    resource: Mapping[str, Any], resource_id: str | None, where: str
) -> None:
    """422 naming `<where>.identifier[i]` if the resource carries an identifier in one of the
    service's systems other than its own (`resource_id` None: the resource is new, so none is
    its own). `where` is the FHIRPath of the resource: `Goal`, `Bundle.entry[2].resource`."""
    identifiers = resource.get("identifier")
    if not isinstance(identifiers, list):
        return  # absent; a malformed element is the validation's to refuse
    own_system = IDENTIFIER_SYSTEM.get(str(resource.get("resourceType")))
    for index, identifier in enumerate(identifiers):
        if not isinstance(identifier, Mapping) or identifier.get("system") not in OWN_SYSTEMS:
            continue
        if (
            resource_id is not None
            and identifier.get("system") == own_system
            and identifier.get("value") == resource_id
        ):
            continue
        whose = f"{resource['resourceType']}/{resource_id}" if resource_id else "a new resource"
        diagnostics = (
            f"{identifier.get('system')}|{identifier.get('value')} does not identify {whose}; "
            "identifiers in CaseBridge's own systems are assigned by the server"
        )
        issue = {
            "severity": "error",
            "code": "business-rule",
            "diagnostics": diagnostics,
            "expression": [f"{where}.identifier[{index}]"],
        }
        raise ForeignOwnIdentifier(diagnostics, extra={"issues": [issue]})
