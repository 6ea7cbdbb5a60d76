"""The CapabilityStatement at `/fhir/metadata`, generated from what is implemented: the
supported types and their search parameters (the store's registry), the interactions the
routers register, the profiles shipped in `fhir_profiles/`, and the SMART endpoints."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_profiles.artifacts import (
    load_structure_definition,
    structure_definition_canonicals,
    us_core_profile_for,
)
from service.fhir_auth.runtime import token_url
from service.fhir_engine.creates import CREATABLE
from service.fhir_engine.deletes import DELETABLE
from service.fhir_engine.updates import UPDATABLE
from service.fhir_store.search_params import COMMON_PARAMS, SEARCH_PARAMS, ParamType
from service.settings import Settings

FHIR_VERSION = "4.0.1"
US_CORE_VERSIONS = ("6.1.0", "7.0.0")
SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

# Which route implements which interaction: the statement lists those the app really has.
_TYPE = "/fhir/{resource_type}"
_INSTANCE = _TYPE + "/{resource_id}"
TYPE_INTERACTION_ROUTES: dict[str, tuple[str, str]] = {
    "read": ("GET", _INSTANCE),
    "vread": ("GET", _INSTANCE + "/_history/{version_id}"),
    "update": ("PUT", _INSTANCE),
    "patch": ("PATCH", _INSTANCE),
    "delete": ("DELETE", _INSTANCE),
    "history-instance": ("GET", _INSTANCE + "/_history"),
    "history-type": ("GET", _TYPE + "/_history"),
    "create": ("POST", _TYPE),
    "search-type": ("GET", _TYPE),
}
# Writes a case gives meaning to only for some types (see `creates`, `updates`, `deletes`).
WRITABLE_TYPES: dict[str, frozenset[str]] = {
    "create": CREATABLE,
    "update": UPDATABLE,
    "patch": UPDATABLE,
    "delete": DELETABLE,
}
# `$validate` (FHIR R4 resource-operation-validate), declared on every type it is routed for.
VALIDATE_ROUTE = _TYPE + "/$validate"
VALIDATE_OPERATION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"
SYSTEM_INTERACTION_ROUTES: dict[str, tuple[str, str]] = {
    "transaction": ("POST", "/fhir"),
    "batch": ("POST", "/fhir"),
    "history-system": ("GET", "/fhir/_history"),
}


def implemented(paths: dict[str, Any], table: dict[str, tuple[str, str]]) -> list[str]:
    """The interactions whose route is in the app's OpenAPI `paths`."""
    return [code for code, (method, path) in table.items() if method.lower() in paths.get(path, {})]


def _profiles_by_type() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for canonical in structure_definition_canonicals():
        definition = load_structure_definition(canonical.url, canonical.version)
        if definition.get("kind") == "resource" and definition.get("derivation") == "constraint":
            found.setdefault(definition["type"], []).append(str(canonical))
    return found


def _resource(
    resource_type: str, profiles: list[str], interactions: list[str], *, validate: bool
) -> dict[str, Any]:
    params = SEARCH_PARAMS[resource_type]
    base = us_core_profile_for(resource_type, US_CORE_VERSIONS[-1])
    entry: dict[str, Any] = {"type": resource_type}
    if base is not None:
        entry["profile"] = base
    if profiles:
        entry["supportedProfile"] = profiles
    entry |= {
        "interaction": [
            {"code": code}
            for code in interactions
            if resource_type in WRITABLE_TYPES.get(code, {resource_type})
        ],
        "versioning": "versioned",
        "readHistory": True,
        "conditionalRead": "full-support",
        "searchInclude": [
            f"{resource_type}:{p.name}" for p in params.values() if p.type is ParamType.reference
        ],
        "searchParam": [
            {"name": name, "type": "token" if name == "_id" else "date"} for name in COMMON_PARAMS
        ]
        + [{"name": p.name, "type": p.type.value} for p in params.values()],
    }
    if validate:
        entry["operation"] = [{"name": "validate", "definition": VALIDATE_OPERATION}]
    if resource_type in UPDATABLE:
        entry["conditionalUpdate"] = True
        entry["updateCreate"] = False  # ids are the server's: PUT to an unknown id is a 405
    if resource_type in CREATABLE:
        entry["conditionalCreate"] = True
    if resource_type in DELETABLE and "delete" in interactions:
        entry["conditionalDelete"] = "single"  # several matches: 412 (fhir_engine.deletes)
    if resource_type != "Provenance":
        entry["searchRevInclude"] = ["Provenance:target"]
    return entry


def capability_statement(settings: Settings, openapi_paths: dict[str, Any]) -> bytes:
    profiles = _profiles_by_type()
    type_interactions = implemented(openapi_paths, TYPE_INTERACTION_ROUTES)
    system_interactions = implemented(openapi_paths, SYSTEM_INTERACTION_ROUTES)
    validate = "post" in openapi_paths.get(VALIDATE_ROUTE, {})
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "CaseBridge",
        "kind": "instance",
        "software": {"name": "CaseBridge", "version": "0.1.0"},
        "implementation": {
            "description": "CaseBridge FHIR API",
            "url": settings.public_base_url.rstrip("/") + "/fhir",
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": SMART_OAUTH_URIS,
                            "extension": [{"url": "token", "valueUri": token_url(settings)}],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
                "resource": [
                    _resource(t, profiles.get(t, []), type_interactions, validate=validate)
                    for t in sorted(SEARCH_PARAMS)
                ],
                **(
                    {"interaction": [{"code": c} for c in system_interactions]}
                    if system_interactions
                    else {}
                ),
            }
        ],
    }
    return orjson.dumps(statement)
