"""A write of a type `/fhir` serves for reading only (`service.fhir_engine.read_only`) is
refused with the reason, in the status its interaction gives: 422 for a create, an update or a
patch (with the type as the issue's expression), 405 for a delete, plain or conditional."""

from __future__ import annotations

import pytest

from service.errors import MethodNotAllowed, UnprocessableEntity
from service.fhir_engine.read_only import READ_ONLY
from service.fhir_engine.router import FhirEngine
from tests.fhir_engine.conftest import call, refused

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.mark.parametrize("resource_type", sorted(READ_ONLY))
async def test_each_write_of_a_read_only_type_is_refused_with_its_reason(
    engine: FhirEngine, resource_type: str
) -> None:
    why = READ_ONLY[resource_type]
    url = f"{resource_type}/some-id"
    body = {"resourceType": resource_type, "id": "some-id"}
    patch = [{"op": "replace", "path": "/id", "value": "other"}]
    writes = [
        (await call(engine, "POST", resource_type, body), UnprocessableEntity, "created"),
        (await call(engine, "PUT", url, body), UnprocessableEntity, "updated"),
        (
            await call(engine, "PATCH", url, patch, headers=JSON_PATCH),
            UnprocessableEntity,
            "updated",
        ),
        (await call(engine, "DELETE", url), MethodNotAllowed, "deleted"),
        (await call(engine, "DELETE", f"{resource_type}?_id=some-id"), MethodNotAllowed, "deleted"),
    ]
    for result, error, verb in writes:
        [issue] = refused(result, error.status)["issue"]
        assert issue["diagnostics"] == f"{error.title}: a {resource_type} is not {verb} here: {why}"
        # Only the 422s name the type as the element at fault.
        assert issue.get("expression") == ([resource_type] if error.status == 422 else None)
