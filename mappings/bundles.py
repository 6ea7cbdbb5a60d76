"""Bundles of a projected case: a transaction for pushing, a collection for export.

**Transaction** (`transaction_bundle`): every entry has a `urn:uuid` fullUrl (a UUID5 of
`Type/id`, so the same resource gets the same fullUrl in every push) and references between
the entries are rewritten to those fullUrls, so the receiving server links what it creates.
Resource ids are left out: the server owns its ids. Requests are conditional, keyed by the
service's own identifier, so pushing twice never duplicates:

- Organization, Practitioner (who acts): conditional create keyed by the NPI where known, else
  the CaseBridge identifier (`mappings.to_fhir.people.match_identifier`); never overwritten.
- Patient: conditional create, `POST Patient` with `ifNoneExist: identifier=<system>|<value>`
  of the patient's first identifier (the EHR's MRN when the case knows it, else ours). The
  service never overwrites the EHR's demographics.
- Condition, Goal, ServiceRequest, CareTeam, CarePlan: conditional update,
  `PUT <Type>?identifier=<system>|<value>` with the CaseBridge identifier.
- Provenance (optional, one per change): plain `POST`, its targets rewritten like the rest.

**Export** (`export_bundle`): a `collection` Bundle of the whole case, entries in projection
order with RESTful fullUrls (`<base>/<Type>/<id>`) and the resources exactly as projected.
A `document` Bundle was not chosen: it needs a Composition and carries attestation semantics
(a signed, frozen clinical document) that a working case plan does not have.

Neither function validates again: the entries were validated once by the projection, and a
Bundle around valid resources with these fixed shapes is valid (the tests check it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from mappings.canonical import IDENTIFIER_SYSTEM
from mappings.fhir_datatypes import JsonDict, compact, fhir_datetime
from mappings.projection import CaseProjection, ProjectedResource
from mappings.to_fhir.people import PEOPLE_TYPES, match_identifier

FULL_URL_NAMESPACE = uuid.UUID("6f0f8a52-3c0e-4f5e-9a57-2d5c1d0b7a10")


def full_url(reference: str) -> str:
    """The stable `urn:uuid` of a `Type/id` inside a transaction."""
    return f"urn:uuid:{uuid.uuid5(FULL_URL_NAMESPACE, reference)}"


def identifier_query(system: str, value: str) -> str:
    return "identifier=" + quote(f"{system}|{value}", safe=":/|")


def with_references(value: Any, targets: Mapping[str, str]) -> Any:
    """A copy of a JSON value with every `reference` found in `targets` replaced."""
    if isinstance(value, dict):
        copied = {key: with_references(item, targets) for key, item in value.items()}
        target = value.get("reference")
        if isinstance(target, str) and target in targets:
            copied["reference"] = targets[target]
        return copied
    if isinstance(value, list):
        return [with_references(item, targets) for item in value]
    return value


def own_identifier(resource: Mapping[str, Any]) -> tuple[str, str]:
    """The (system, value) of the CaseBridge identifier of a projected resource."""
    system = IDENTIFIER_SYSTEM[resource["resourceType"]]
    for identifier in resource.get("identifier") or ():
        if identifier.get("system") == system and identifier.get("value"):
            return system, str(identifier["value"])
    raise ValueError(f"{resource['resourceType']}/{resource.get('id')} has no {system} identifier")


def entry_request(resource: Mapping[str, Any]) -> JsonDict:
    resource_type = resource["resourceType"]
    if resource_type == "Provenance":
        return {"method": "POST", "url": "Provenance"}
    if resource_type in PEOPLE_TYPES:  # created or matched, never overwritten
        system, value = match_identifier(resource)
        return {
            "method": "POST",
            "url": resource_type,
            "ifNoneExist": identifier_query(system, value),
        }
    if resource_type == "Patient":
        first = (resource.get("identifier") or [{}])[0]
        return {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": identifier_query(first["system"], first["value"]),
        }
    system, value = own_identifier(resource)
    return {"method": "PUT", "url": f"{resource_type}?{identifier_query(system, value)}"}


def transaction_bundle(
    projection: CaseProjection, provenances: Iterable[JsonDict] = ()
) -> JsonDict:
    """The push of a whole case as one transaction (see the module doc)."""
    resources = [r.resource for r in projection] + list(provenances)
    targets = {
        f"{r['resourceType']}/{r['id']}": full_url(f"{r['resourceType']}/{r['id']}")
        for r in resources
    }
    entries = []
    for resource in resources:
        reference = f"{resource['resourceType']}/{resource['id']}"
        body = with_references(resource, targets)
        del body["id"]
        entries.append(
            {"fullUrl": targets[reference], "resource": body, "request": entry_request(resource)}
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def export_bundle(
    projection: CaseProjection, base_url: str, timestamp: dt.datetime | None = None
) -> JsonDict:
    """The whole case as one `collection` Bundle (see the module doc)."""
    base = base_url.rstrip("/")
    return compact(
        resourceType="Bundle",
        id=f"case-{projection.case_id}",
        identifier={"system": IDENTIFIER_SYSTEM["CarePlan"], "value": projection.case_id},
        type="collection",
        timestamp=fhir_datetime(timestamp) if timestamp else None,
        entry=[export_entry(r, base) for r in projection],
    )


def export_entry(resource: ProjectedResource, base: str) -> JsonDict:
    return {"fullUrl": f"{base}/{resource.reference}", "resource": resource.resource}
