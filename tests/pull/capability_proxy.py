"""sekmet-fhir behind a loopback proxy of the tests' own that makes it a different server: its
`/metadata` is a minimal CapabilityStatement (the resources, `read` and `search-type`, but no
`searchParam`, no operation and no security), and it has no SMART discovery
(`.well-known/smart-configuration` is 404). Everything else is forwarded as it is, and the
proxy keeps the searches it saw, so a test can count the probes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from service.pull.reader import RECORD_TYPES
from tests.pull.fault_proxy import FaultPlan, FaultProxy

DECLARED_TYPES = ("Patient", *RECORD_TYPES)


def minimal_capability_statement() -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {"type": kind, "interaction": [{"code": "read"}, {"code": "search-type"}]}
                    for kind in DECLARED_TYPES
                ],
            }
        ],
    }


class MinimalCapabilityProxy(FaultProxy):
    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, FaultPlan(enabled=False, page_size=100))
        # (type, query) of every search that reached the server.
        self.searches: list[tuple[str, dict[str, str]]] = []

    def probes(self, resource_type: str) -> int:
        """The searches with `_count=1` on the type: the probes (the pull's own do not ask it)."""
        return sum(
            1
            for kind, query in self.searches
            if kind == resource_type and query.get("_count") == "1"
        )

    async def _forward(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if path.endswith("/metadata"):
            return Response(
                orjson.dumps(minimal_capability_statement()), media_type="application/fhir+json"
            )
        if path.endswith("/.well-known/smart-configuration"):
            return Response(status_code=404)
        tail = path.split("/fhir/", 1)[-1]
        if request.method == "GET" and "/" not in tail:
            self.searches.append((tail, dict(request.query_params)))
        return await super()._forward(request)
