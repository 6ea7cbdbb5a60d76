"""A connection row to a fake EHR (respx) whose capabilities each test chooses."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import respx

from service.connections.models import AuthMode, Connection
from service.db.base import utcnow
from service.db.session import Database
from service.ehr.discovery import Capabilities, ResourceCapability

BASE = "http://127.0.0.1:9/fhir"
PUSHED_TYPES = ("Condition", "Goal", "ServiceRequest", "CareTeam", "CarePlan")


def capabilities(
    *,
    transaction: bool = False,
    conditional_create: bool = True,
    read_only: Iterable[str] = (),
    provenance: bool = True,
    documents: bool = False,
) -> Capabilities:
    read_only = set(read_only)
    resources = {
        name: ResourceCapability(
            interactions=["read", "search-type"]
            + ([] if name in read_only else ["create", "update", "delete"]),
            search_params=["identifier", "patient"],
            conditional_create=conditional_create,
            versioning="versioned-update",
        )
        for name in PUSHED_TYPES
    }
    if provenance:
        # Created by update at an id of ours (`updateCreate`), so a replay writes no second one.
        resources["Provenance"] = ResourceCapability(
            interactions=["create", "read", "update"], update_create=True
        )
    if documents:
        resources["DocumentReference"] = ResourceCapability(
            interactions=["read", "create", "update", "search-type"],
            search_params=["identifier"],
            conditional_create=conditional_create,
        )
    return Capabilities(
        fhir_version="4.0.1",
        resources=resources,
        system_interactions=["transaction"] if transaction else [],
    )


async def fake_connection(database: Database, caps: Capabilities, name: str = "") -> str:
    async with database.transaction() as session:
        connection = Connection(
            name=f"fake ehr {name}".strip(),
            base_url=BASE,
            auth_mode=AuthMode.none,
            client_id=None,
            scopes=[],
            signing_alg="RS384",
            capabilities=caps.model_dump(mode="json"),
            discovered_at=utcnow(),
            keys=[],
        )
        session.add(connection)
        await session.flush()
        return connection.id


class FakeEhr:
    """A tiny in-memory FHIR server for respx: create (honouring If-None-Exist on identifier),
    versioned update (honouring If-Match), read, search by identifier, and transactions of
    those. Every request is kept in `requests` for the tests to inspect."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self._ids = itertools.count(1)

    def install(self, router: respx.MockRouter) -> None:
        router.route(url__startswith=BASE).mock(side_effect=self.handle)

    def writes(self, method: str | None = None) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method in ("POST", "PUT") and (method is None or r.method == method)
        ]

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for (t, _), r in self.store.items() if t == resource_type]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/fhir").strip("/")
        parts = path.split("/") if path else []
        body: Any = orjson.loads(request.content) if request.content else None
        if request.method == "POST" and not parts:
            return self._transaction(body)
        status, resource = self._one(
            request.method, parts, body, dict(request.headers), dict(request.url.params)
        )
        return self._answer(status, resource)

    def _answer(self, status: int, resource: dict[str, Any] | None) -> httpx.Response:
        headers = {}
        if resource is not None and status < 300 and resource.get("resourceType") != "Bundle":
            version = resource["meta"]["versionId"]
            headers["ETag"] = f'W/"{version}"'
            headers["Location"] = (
                f"{BASE}/{resource['resourceType']}/{resource['id']}/_history/{version}"
            )
        return httpx.Response(status, json=resource, headers=headers)

    def _one(
        self,
        method: str,
        parts: list[str],
        body: Any,
        headers: dict[str, str],
        params: dict[str, str],
    ) -> tuple[int, dict[str, Any] | None]:
        if method == "GET" and len(parts) == 2:
            found = self.store.get((parts[0], parts[1]))
            return (200, found) if found else (404, _outcome("not found"))
        if method == "GET" and len(parts) == 1:
            matches = self._by_identifier(parts[0], params.get("identifier", ""))
            return 200, {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches],
            }
        if method == "POST" and len(parts) == 1:
            condition = headers.get("if-none-exist")
            if condition:
                matches = self._by_identifier(parts[0], condition.removeprefix("identifier="))
                if matches:
                    return 200, matches[0]
            resource = dict(body) | {"id": f"r{next(self._ids)}"}
            return 201, self._save(resource, 1)
        if method == "PUT" and len(parts) == 2:
            current = self.store.get((parts[0], parts[1]))
            version = int(current["meta"]["versionId"]) if current else 0
            if_match = headers.get("if-match")
            if if_match is not None and if_match != f'W/"{version}"':
                return 412, _outcome(f"version conflict: current is {version}")
            return (200 if current else 201), self._save(dict(body), version + 1)
        if method == "DELETE" and len(parts) == 2:
            gone = self.store.pop((parts[0], parts[1]), None)
            return (204, None) if gone else (404, _outcome("not found"))
        return 400, _outcome("not supported by the fake")

    def _transaction(self, bundle: dict[str, Any]) -> httpx.Response:
        entries = bundle["entry"]
        full_urls: dict[str, str] = {}
        answers = []
        saved = dict(self.store)
        for entry in entries:
            request = entry["request"]
            resource = _rewritten(entry["resource"], full_urls)
            headers = {}
            if request.get("ifNoneExist"):
                headers["if-none-exist"] = request["ifNoneExist"]
            if request.get("ifMatch"):
                headers["if-match"] = request["ifMatch"]
            status, result = self._one(
                request["method"], request["url"].split("/"), resource, headers, {}
            )
            if status >= 300:
                self.store = saved  # all or nothing
                return httpx.Response(status, json=result)
            assert result is not None
            if entry.get("fullUrl"):
                full_urls[entry["fullUrl"]] = f"{result['resourceType']}/{result['id']}"
            version = result["meta"]["versionId"]
            answers.append(
                {
                    "resource": result,
                    "response": {
                        "status": f"{status} {'Created' if status == 201 else 'OK'}",
                        "location": f"{result['resourceType']}/{result['id']}/_history/{version}",
                        "etag": f'W/"{version}"',
                    },
                }
            )
        # References to entries that came later in the bundle.
        for answer in answers:
            resource = _rewritten(answer["resource"], full_urls)
            self.store[(resource["resourceType"], resource["id"])] = resource
            answer["resource"] = resource
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
        )

    def _save(self, resource: dict[str, Any], version: int) -> dict[str, Any]:
        resource["meta"] = dict(resource.get("meta") or {}) | {"versionId": str(version)}
        self.store[(resource["resourceType"], resource["id"])] = resource
        return resource

    def _by_identifier(self, resource_type: str, token: str) -> list[dict[str, Any]]:
        system, _, value = unquote(token).partition("|")
        return [
            r
            for r in self.of_type(resource_type)
            if any(
                i.get("system") == system and i.get("value") == value
                for i in r.get("identifier") or []
            )
        ]


def _outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


def _rewritten(value: Any, full_urls: dict[str, str]) -> Any:
    if isinstance(value, dict):
        copied = {k: _rewritten(v, full_urls) for k, v in value.items()}
        if isinstance(value.get("reference"), str) and value["reference"] in full_urls:
            copied["reference"] = full_urls[value["reference"]]
        return copied
    if isinstance(value, list):
        return [_rewritten(v, full_urls) for v in value]
    return value
