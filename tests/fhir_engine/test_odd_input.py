"""Odd input never reaches a 500: malformed Bundles and entries, huge version ids, many search
values, each refused with an OperationOutcome naming the problem. A property-based test
(hypothesis) throws generated malformed Bundles, entries, headers and search parameters at
`/fhir` through the whole ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import delete

from service.app import create_app
from service.db.base import Base
from service.fhir_auth.principal import FhirPrincipal, authenticate_fhir
from service.fhir_auth.scopes import parse_scopes
from service.fhir_engine.router import FhirEngine
from service.settings import Settings
from tests.fhir_engine.conftest import call, refused


@pytest.mark.parametrize(
    "entry",
    [None, "x", {}, {"request": "POST Goal"}, {"request": None, "resource": {}}, [], 7],
)
@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_odd_entries_are_refused_by_name(engine: FhirEngine, kind: str, entry: Any) -> None:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [entry]}
    result = await call(engine, "POST", "", bundle)
    if kind == "transaction":
        body = refused(result, 400)
        assert body["issue"][0]["expression"][0].startswith("Bundle.entry[0]")
    else:  # a batch answers 200; the entry carries its own refusal
        assert result.status == 200
        (only,) = orjson.loads(result.body)["entry"]
        assert only["response"]["status"] == "400 Bad Request"
        assert only["response"]["outcome"]["issue"][0]["expression"][0].startswith(
            "Bundle.entry[0]"
        )


@pytest.mark.parametrize("entries", ["x", {"a": 1}, 5])
async def test_an_entry_element_that_is_not_a_list_is_refused(
    engine: FhirEngine, entries: Any
) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    body = refused(await call(engine, "POST", "", bundle), 400)
    assert body["issue"][0]["expression"] == ["Bundle.entry"]


async def test_a_thousand_ids_get_a_clear_400(engine: FhirEngine) -> None:
    ids = ",".join(f"id-{n}" for n in range(1000))
    body = refused(await call(engine, "GET", f"Goal?_id={ids}"), 400)
    assert "at most 200" in body["issue"][0]["diagnostics"]
    fine = await call(engine, "GET", "Goal?_id=" + ",".join(f"id-{n}" for n in range(200)))
    assert fine.status == 200


# --- property-based: the whole app, generated malformed input ---------------------------------

_TEXT = st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30)
_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), _TEXT)
_METHODS = st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "get"]), _TEXT)
_URLS = st.one_of(
    st.sampled_from(
        ["Goal", "Goal/x", "Goal?_id=a", "CarePlan/x/_history/99999999999999999999", "metadata"]
    ),
    _TEXT,
)
_RESOURCES = st.one_of(
    _JSON_LEAF,
    st.fixed_dictionaries(
        {"resourceType": st.one_of(st.sampled_from(["Goal", "CarePlan", "Patient"]), _JSON_LEAF)},
        optional={"subject": st.one_of(_JSON_LEAF, st.just({"reference": "Patient/x"}))},
    ),
)
_REQUESTS = st.one_of(
    _JSON_LEAF,
    st.fixed_dictionaries(
        {},
        optional={
            "method": _METHODS,
            "url": _URLS,
            "ifMatch": _JSON_LEAF,
            "ifNoneExist": _JSON_LEAF,
        },
    ),
)
_ENTRIES = st.one_of(
    _JSON_LEAF,
    st.fixed_dictionaries(
        {}, optional={"request": _REQUESTS, "resource": _RESOURCES, "fullUrl": _JSON_LEAF}
    ),
)
_BUNDLES = st.one_of(
    _JSON_LEAF,
    st.lists(_JSON_LEAF, max_size=3),
    st.fixed_dictionaries(
        {},
        optional={
            "resourceType": st.one_of(st.just("Bundle"), _JSON_LEAF),
            "type": st.one_of(st.sampled_from(["transaction", "batch", "collection"]), _JSON_LEAF),
            "entry": st.one_of(_JSON_LEAF, st.lists(_ENTRIES, max_size=4)),
        },
    ),
)
_HEADER_VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_HEADERS = st.dictionaries(
    st.sampled_from(
        ["If-Match", "If-None-Exist", "If-None-Match", "If-Modified-Since", "Prefer", "Accept"]
    ),
    _HEADER_VALUES,
    max_size=3,
)
_PARAM_NAMES = st.one_of(
    st.sampled_from(
        [
            "_id",
            "_count",
            "_sort",
            "_summary",
            "_total",
            "_include",
            "_revinclude",
            "_lastUpdated",
            "_cursor",
            "patient",
            "status",
            "target-date",
            "identifier",
            "lifecycle-status:not",
            "subject:missing",
            "description:contains",
        ]
    ),
    _TEXT,
)
_PARAMS = st.lists(st.tuples(_PARAM_NAMES, _TEXT), max_size=5)


def _assert_outcome(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["resourceType"] == "OperationOutcome", body
        assert body["issue"]
        for issue in body["issue"]:
            assert issue["severity"] in {"fatal", "error", "warning", "information"}
            assert isinstance(issue["code"], str)
            assert issue["code"]


@contextlib.contextmanager
def _running_app(
    settings: Settings,
) -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]]:
    """The app on a loop of this test's own (hypothesis drives a plain function)."""
    loop = asyncio.new_event_loop()
    app = create_app(settings)
    principal = FhirPrincipal("hypothesis", parse_scopes("system/*.cruds", strict=True))
    app.dependency_overrides[authenticate_fhir] = lambda: principal
    stack = contextlib.AsyncExitStack()
    try:
        loop.run_until_complete(stack.enter_async_context(app.router.lifespan_context(app)))
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": "Bearer overridden"},
        )
        stack.push_async_callback(http.aclose)
        yield loop, http

        async def forget_everything() -> None:
            async with app.state.database.transaction() as session:
                for table in reversed(Base.metadata.sorted_tables):
                    await session.execute(delete(table))

        loop.run_until_complete(forget_everything())
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


def test_malformed_input_never_reaches_a_500(settings: Settings) -> None:
    with _running_app(settings) as (loop, http):

        @hypothesis_settings(
            max_examples=120,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(
            bundle=_BUNDLES,
            headers=_HEADERS,
            params=_PARAMS,
            version=st.integers(min_value=-1, max_value=2**70),
        )
        def throw(
            bundle: Any, headers: dict[str, str], params: list[tuple[str, str]], version: int
        ) -> None:
            async def send() -> None:
                body = json.dumps(bundle).encode()  # stdlib: integers of any size, too
                json_headers = {**headers, "Content-Type": "application/fhir+json"}
                _assert_outcome(await http.post("/fhir", content=body, headers=json_headers))
                _assert_outcome(await http.post("/fhir/Goal", content=body, headers=json_headers))
                _assert_outcome(await http.put("/fhir/Goal/x", content=body, headers=json_headers))
                _assert_outcome(await http.get("/fhir/Goal", params=tuple(params), headers=headers))
                _assert_outcome(await http.get(f"/fhir/CarePlan/x/_history/{version}"))

            loop.run_until_complete(send())

        throw()
