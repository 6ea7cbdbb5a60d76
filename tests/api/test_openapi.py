"""The OpenAPI document describes the error responses each operation can give."""

from __future__ import annotations

from typing import Any

import httpx

from service.api.problems import PROBLEM_MEDIA_TYPE


def api_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in spec["paths"].items()
        if path.startswith("/api/")
        for method, operation in operations.items()
    ]


async def test_every_api_operation_documents_its_problems(anonymous: httpx.AsyncClient) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    operations = api_operations(spec)
    assert len(operations) > 40
    for method, path, operation in operations:
        responses = operation["responses"]
        expected = {"401", "422"}
        if method == "patch":
            expected |= {"409", "412", "413", "428"}
        if method == "post":
            expected |= {"409", "413"}
        if path.startswith("/api/admin/"):
            expected |= {"403"}
        assert expected <= set(responses), f"{method} {path}: {sorted(responses)}"
        for status in expected:
            assert PROBLEM_MEDIA_TYPE in responses[status]["content"], (method, path, status)
        if method == "get":
            assert not {"412", "428"} & set(responses), f"{method} {path}"


async def test_the_problem_schema_is_published(anonymous: httpx.AsyncClient) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status"} <= set(problem["required"])
    assert "rule" in problem["properties"]
