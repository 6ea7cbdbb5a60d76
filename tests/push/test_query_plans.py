"""The push path's queries read by index, never by scanning a table that grows with every case
or push: a push costs the same on a connection with a million delivered pushes as on a new one.

The statements are those a dispatcher really runs (both write strategies, a withdrawn goal, an
update after the first push), captured as they go and explained on SQLite. PostgreSQL's plans
depend on its table statistics, so they are not asserted here.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from service.db.base import utcnow
from service.db.session import Database
from service.fhir_auth.principal import FhirPrincipal, authenticate_fhir
from service.fhir_auth.scopes import parse_scopes
from service.push.dispatcher import PushDispatcher
from service.push.retention import prune_delivered
from tests.api.case_factory import ok, patch_case
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient

# A connection's own configuration: a handful of rows, read whole.
SMALL_TABLES = {"ehr_connections", "ehr_connection_keys"}


@contextmanager
def statements_run(database: Database) -> Iterator[dict[str, Any]]:
    """Each distinct SQL statement run meanwhile, with the parameters it first ran with."""
    seen: dict[str, Any] = {}

    def record(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        seen.setdefault(statement, parameters[0] if many else parameters)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan_problems(path: str, statements: dict[str, Any]) -> list[str]:
    """The plan steps that scan a growing table or find rows by their connection alone."""
    problems = []
    with sqlite3.connect(path) as connection:
        for statement, parameters in statements.items():
            if not re.match(r"\s*(SELECT|UPDATE|INSERT|DELETE)", statement):
                continue
            for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters):
                step: str = row[3]
                read = re.match(r"(SCAN|SEARCH) ([a-z_]+)\b", step)  # not "SCAN 2 CONSTANT ROWS"
                if read is None or read.group(2) in SMALL_TABLES:
                    continue
                if read.group(1) == "SCAN" or "(connection_id=?)" in step:
                    problems.append(f"{step}\n    in {statement[:200]}")
    return problems


async def test_the_dispatchers_statements_read_by_index(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    database_url: str,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's plans: PostgreSQL's depend on its table statistics")
    bundled = await fake_connection(database, capabilities(transaction=True), name="bundled")
    ordered = await fake_connection(database, capabilities(), name="ordered")
    cases = [await case_of_linked_patient(client, database, ordered, "p1")]
    cases.append(await case_of_linked_patient(client, database, bundled, "p2"))
    goals = [
        ok(
            await client.post(
                f"/api/cases/{case['id']}/goals",
                json={"description": "Try the day centre", "lifecycle_status": "proposed"},
            ),
            201,
        )
        for case in cases
    ]
    with statements_run(database) as first_pushes:
        await dispatcher.run_until_idle()
    # An update of what was pushed, and a withdrawn goal, on each connection.
    app.dependency_overrides[authenticate_fhir] = lambda: FhirPrincipal(
        "planner", parse_scopes("system/*.cruds", strict=True)
    )
    try:
        for case, goal in zip(cases, goals, strict=True):
            current = ok(await client.get(f"/api/cases/{case['id']}"))
            ok(await patch_case(client, current, title="Renamed"))
            assert (await client.delete(f"/fhir/Goal/{goal['id']}")).status_code == 204
    finally:
        app.dependency_overrides.pop(authenticate_fhir, None)
    with statements_run(database) as later_pushes:
        await dispatcher.run_until_idle()

    assert len([r for r in fake.requests if r.method == "DELETE"]) == 2
    path = database_url.split(":///", 1)[1]
    assert plan_problems(path, {**first_pushes, **later_pushes}) == []


async def test_the_retention_prune_reads_by_index(database: Database, database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's plans: PostgreSQL's depend on its table statistics")
    with statements_run(database) as pruning:
        async with database.connection() as connection:
            await prune_delivered(connection, utcnow())
    assert pruning
    assert plan_problems(database_url.split(":///", 1)[1], pruning) == []
