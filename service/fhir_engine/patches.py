"""`PATCH /fhir/{type}/{id}` with a JSON Patch (RFC 6902; FHIR R4 http.html#patch): the patch is
applied to the current version, and the result goes the way of a PUT (`updates`), so every
domain rule, `If-Match` and the fidelity warnings apply to it as to an update. FHIRPath Patch
(a Parameters body) and XML Patch are not served: their content types are a 415 at the HTTP
edge, and a Parameters in a Bundle's PATCH entry is a 400 that says so.

A patch is a change to the version it reads, so that read comes after the lock a write of the
resource takes (`write_locks`): a change committed in between would otherwise be reverted by
the patched whole, where a PUT without If-Match replaces the whole by design.

In a batch or transaction, a PATCH entry carries its patch as a Binary resource (R4
http.html#patch: "the patch document is carried in a Binary resource"), read by
`binary_patch`."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import jsonpatch
import jsonpointer
from sqlalchemy.ext.asyncio import AsyncSession

from mappings import fhir_json
from service.errors import BadRequest, Gone, UnprocessableEntity
from service.fhir_auth.principal import FhirPrincipal, Interaction
from service.fhir_engine.read_only import refuse_update
from service.fhir_engine.responses import json_body
from service.fhir_engine.write_locks import lock_for_write
from service.fhir_store import repository

JSON_PATCH = "application/json-patch+json"


def binary_patch(resource: Any, where: str) -> bytes:
    """The JSON Patch a Bundle's PATCH entry carries in its Binary `resource`."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        served = "FHIRPath Patch (Parameters) is not served here; " if kind == "Parameters" else ""
        raise BadRequest(
            f"{served}a PATCH entry's resource is a Binary holding a JSON Patch "
            f"({JSON_PATCH}, R4 http.html#patch)",
            extra={"expression": [f"{where}.resource"]},
        )
    if str(resource.get("contentType", "")).split(";")[0].strip().lower() != JSON_PATCH:
        raise BadRequest(
            f"a PATCH entry's Binary.contentType must be {JSON_PATCH}",
            extra={"expression": [f"{where}.resource.contentType"]},
        )
    data = resource.get("data")
    try:
        if not isinstance(data, str):
            raise ValueError
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(
            "a PATCH entry's Binary.data must be the JSON Patch, base64-encoded",
            extra={"expression": [f"{where}.resource.data"]},
        ) from exc


async def patched_current(
    session: AsyncSession,
    principal: FhirPrincipal,
    resource_type: str,
    resource_id: str,
    body: bytes,
    content_type: str | None,
) -> bytes:
    """The body of the update a PATCH makes: the patch applied to the current version, read
    under the lock every write of the resource meets (410 if a delete came first)."""
    refuse_update(resource_type)  # the reason, before any other refusal
    stored = await repository.current(session, resource_type, resource_id)
    principal.require(resource_type, Interaction.update, patient_id=stored.patient_id)
    if not await lock_for_write(session, stored):
        raise Gone(f"{resource_type}/{resource_id} was deleted")
    return patched(stored.content, body, content_type)


def patched(current: bytes, body: bytes, content_type: str | None) -> bytes:
    """The current resource with the patch applied, as the body of an update."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != JSON_PATCH:
        raise BadRequest(f"a PATCH body is a JSON Patch ({JSON_PATCH})")
    operations = json_body(body)
    if not isinstance(operations, list):
        raise BadRequest("a JSON Patch is an array of operations (RFC 6902)")
    resource: dict[str, Any] = fhir_json.loads(current)
    try:
        patch = jsonpatch.JsonPatch(operations)
        result = patch.apply(resource)
    except jsonpatch.InvalidJsonPatch as exc:
        raise BadRequest(f"the JSON Patch is not valid: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        # A failed `test`, or a path the resource does not have (RFC 6902 §5).
        raise UnprocessableEntity(f"the JSON Patch does not apply: {exc}") from exc
    if not isinstance(result, dict):
        raise UnprocessableEntity("the JSON Patch does not leave a resource")
    return fhir_json.dumps(result)
