"""Where a `/fhir` read and search spend their work, in process and deterministic.

Runs the app in process (its lifespan too), seeds cases through `/api`, gets a real SMART
access token from `/auth/token`, and prints, per read of a CarePlan and per search of 50
CarePlans, each sent straight through the ASGI app (no HTTP client, whose own calls would
hide ours): the SQL statements run (an engine event listener; the audit writer's included),
the Python function calls (cProfile), the time of one request at a time, and the rate of
`--concurrency` callers at once; the same for the ceiling app (`bench/ceiling_app.py`).
Statement and call counts do not depend on the machine's load; times do (compare ratios of
one run). `--top N` lists the N functions of most cumulative time (`PROFILE_SORT=tottime` to
sort by own time); `--concurrent-top N` profiles the concurrent run.

    python -m bench.fhir_read_profile [--cases 60] [--requests 200] [--concurrency 16]
        [--seconds 3] [--top 0] [--database-url postgresql+asyncpg://.../empty_db]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import os
import pstats
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.fhir_load import fetch_token

API_KEY = "profile-" + uuid.uuid4().hex
SCOPES = "system/CarePlan.cruds system/Goal.cruds system/Patient.rs"


async def _seed(http: httpx.AsyncClient, cases: int) -> str:
    """`cases` cases with a goal each; returns the first case's id (its CarePlan's)."""
    headers = {"X-API-Key": API_KEY}
    first = ""
    for n in range(cases):
        patient = (
            await http.post("/api/patients", headers=headers, json={"family_name": f"Prof{n}"})
        ).json()
        case = (
            await http.post(
                "/api/cases",
                headers=headers,
                json={"patient_id": patient["id"], "program": "nursing"},
            )
        ).json()
        await http.post(
            f"/api/cases/{case['id']}/goals",
            headers=headers,
            json={"description": "Walk", "lifecycle_status": "active"},
        )
        first = first or str(case["id"])
    return first


async def _asgi_get(app: Any, path: str, headers: dict[str, str]) -> int:
    """One GET straight through the ASGI app (no HTTP client: its cost would hide ours)."""
    target, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _ok(app: Any, path: str, headers: dict[str, str]) -> None:
    status = await _asgi_get(app, path, headers)
    assert status == 200, f"{path}: {status}"


async def _measure(
    app: Any,
    url: str,
    headers: dict[str, str],
    requests: int,
    statements: Counter[str],
    top: int,
) -> tuple[float, float, float]:
    """(statements, function calls, seconds) per request over `requests` sequential ones,
    straight through the ASGI app (an HTTP client's own calls would hide ours)."""
    for _ in range(10):  # warm: caches, prepared statements, pool
        await _ok(app, url, headers)
    statements.clear()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        await _ok(app, url, headers)
    profiler.disable()
    executed = sum(statements.values())
    stats = pstats.Stats(profiler)
    calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
    if top:
        stats.sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(top)
        for statement, count in statements.most_common():
            print(f"  {count / requests:5.2f} x {statement[:150]}")
    started = time.perf_counter()
    for _ in range(requests):
        await _ok(app, url, headers)
    elapsed = time.perf_counter() - started
    return executed / requests, calls / requests, elapsed / requests


async def _throughput(
    app: Any, path: str, headers: dict[str, str], concurrency: int, seconds: float, top: int
) -> float:
    """Requests/s of `concurrency` callers looping for `seconds` (as wrk's connections do)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            status = await _asgi_get(app, path, headers)
            assert status == 200, status
            done += 1

    profiler = cProfile.Profile() if top else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if profiler:
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(top)
    return done / elapsed


async def main_async(args: argparse.Namespace, database_url: str) -> None:
    os.environ |= {
        "CASEBRIDGE_DATABASE_URL": database_url,
        "CASEBRIDGE_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CASEBRIDGE_BOOTSTRAP_API_KEY": API_KEY,
        "CASEBRIDGE_AUTO_MIGRATE": "true",
        "CASEBRIDGE_FHIR_ACCESS_TOKEN_LIFETIME_SECONDS": "3600",
        "CASEBRIDGE_PUBLIC_BASE_URL": "http://testserver",
        "CASEBRIDGE_RATE_LIMITS_ENABLED": "false",
        "CASEBRIDGE_MAX_IN_FLIGHT": "0",
    }
    import logging

    from sqlalchemy import event

    from service.app import create_app
    from service.settings import Settings

    logging.getLogger().setLevel(logging.WARNING)
    app = create_app(Settings())
    statements: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[" ".join(statement.split())] += 1

    async with app.router.lifespan_context(app):
        event.listen(app.state.database.engine.sync_engine, "before_cursor_execute", count)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            plan = await _seed(http, args.cases)
            access_token = await fetch_token(http, API_KEY, SCOPES, name="profile")
            bearer = {"Authorization": f"Bearer {access_token}"}
            urls = {"read": f"/fhir/CarePlan/{plan}", "search (50)": "/fhir/CarePlan?_count=50"}
        ours = {
            name: await _measure(app, url, bearer, args.requests, statements, args.top)
            for name, url in urls.items()
        }
        ours_rate = {
            name: await _throughput(
                app, url, bearer, args.concurrency, args.seconds, args.concurrent_top
            )
            for name, url in urls.items()
        }
        from bench import ceiling_app

        ceiling_statements: Counter[str] = Counter()

        def count_ceiling(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            ceiling_statements[statement] += 1

        event.listen(ceiling_app.engine.sync_engine, "before_cursor_execute", count_ceiling)
        bare = {
            name: await _measure(ceiling_app.app, url, {}, args.requests, ceiling_statements, 0)
            for name, url in urls.items()
        }
        bare_rate = {
            name: await _throughput(ceiling_app.app, url, {}, args.concurrency, args.seconds, 0)
            for name, url in urls.items()
        }
        await ceiling_app.engine.dispose()
    print(
        f"{'operation':12} {'statements':>10} {'calls':>8} {'ms':>7} | ceiling: statements "
        f"{'calls':>6} {'ms':>6} | sequential vs ceiling | {args.concurrency} concurrent: req/s "
        "(ceiling) vs ceiling"
    )
    for name in urls:
        (s, c, t), (bs, bc, bt) = ours[name], bare[name]
        print(
            f"{name:12} {s:10.2f} {c:8.0f} {t * 1000:7.2f} | {bs:19.2f} {bc:6.0f} "
            f"{bt * 1000:6.2f} | {bt / t:21.2f}x | {ours_rate[name]:7.0f} ({bare_rate[name]:5.0f})"
            f" {ours_rate[name] / bare_rate[name]:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrent-top", type=int, default=0)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'profile.db'}"
        asyncio.run(main_async(args, url))


if __name__ == "__main__":
    main()
