"""`PATCH /fhir/{type}/{id}` with a JSON Patch (RFC 6902; FHIR R4 http.html#patch): the patch is
applied to the current version, and the result goes the way of a PUT (`updates`), so every
domain rule, `If-Match` and the fidelity warnings apply to it as to an update. FHIRPath Patch
(a Parameters body) and XML Patch are not served: their content types are a 415 at the HTTP
edge."""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from mappings import fhir_json
from service.errors import BadRequest, UnprocessableEntity
from service.fhir_engine.responses import json_body

JSON_PATCH = "application/json-patch+json"


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
