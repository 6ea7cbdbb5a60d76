"""Throughput of patient pulls from a loopback FHIR server with injected per-request latency,
and the peak memory of a Bulk Data NDJSON pull as the file grows.

    .venv/bin/python -m bench.pull_throughput                    # 60 patients, 100 ms, 8 in flight
    .venv/bin/python -m bench.pull_throughput --patients 200 --latency 0.1 --concurrency 16

What it does:

1. starts sekmet-fhir on loopback, seeded with N patients of 26-45 resources each
   (tests/pull/ehr_records.py), behind the tests' proxy (tests/pull/fault_proxy.py) with no
   faults and `--latency` seconds added to every request;
2. pulls every patient with `service.pull.service.pull_patient_record`, `--concurrency`
   patients and requests in flight, into a fresh SQLite database, and prints patients/s and
   the ratio to the ideal `requests x latency / concurrency` (target: at most 1.3x);
3. reads the same records sequentially with the PyPI `fhirclient` package (the same searches,
   following `next` links) and prints the ratio of the two wall times;
4. serves a Bulk export of one NDJSON file of `--bulk-lines` and four times as many lines from
   a bulk server of its own (a child process), pulls each with `service.pull.bulk_pull`, and
   prints the peak Python memory (tracemalloc) of each: it stays flat as the file grows.

Prints figures only; nothing passes or fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from service.db.schema import upgrade_to_head
from service.db.session import Database
from service.ehr.client import FhirClient, RetryPolicy
from service.ehr.discovery import Capabilities, discover
from service.ehr.url_policy import UrlPolicy
from service.pull.bulk import BulkExport
from service.pull.bulk_pull import pull_group
from service.pull.reader import CARE_PLAN_REFERENCES, RECORD_TYPES, PullTarget
from service.pull.service import pull_patient_record
from service.settings import Settings
from tests.pull.ehr_records import PULLED_CATEGORIES
from tests.pull.ehr_server import SeededEhr, start_seeded_sekmet, stop
from tests.pull.fault_proxy import FaultPlan, FaultProxy
from tests.smart.sekmet_server import free_port, sekmet_binary

LOOPBACK = UrlPolicy(allow_insecure_http=True, allow_private_networks=True)


async def fresh_database(directory: Path, name: str) -> Database:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{directory / name}",
        dev_mode=True,
        allow_insecure_http=True,
        allow_private_networks=True,
    )
    database = Database(settings)
    await upgrade_to_head(database.engine)
    return database


async def connection_row(database: Database, base_url: str) -> str:
    from service.connections.models import AuthMode, Connection

    async with database.transaction() as session:
        connection = Connection(
            name=f"bench {base_url}",
            base_url=base_url,
            auth_mode=AuthMode.none,
            client_id=None,
            scopes=[],
            signing_alg="RS384",
            capabilities=None,
        )
        session.add(connection)
        await session.flush()
        return connection.id


async def pull_all(
    database: Database, base_url: str, ids: list[str], concurrency: int, patients_in_flight: int
) -> tuple[float, Capabilities]:
    connection_id = await connection_row(database, base_url)
    async with FhirClient(
        base_url, policy=LOOPBACK, max_concurrency=concurrency, retry=RetryPolicy(max_retries=2)
    ) as client:
        capabilities = await discover(client, LOOPBACK, require_oauth=False)
        # Patients in flight (like pull_patients_per_connection); the client's semaphore
        # bounds the requests in flight (like ehr_max_concurrency).
        limit = asyncio.Semaphore(patients_in_flight)

        async def one(remote_id: str) -> None:
            async with limit:
                result = await pull_patient_record(
                    database,
                    client,
                    connection_id,
                    PullTarget(remote_id=remote_id),
                    actor="bench",
                    capabilities=capabilities,
                    observation_categories=sorted(PULLED_CATEGORIES),
                )
            assert not result.failures, result.failures

        start = time.perf_counter()
        await asyncio.gather(*(one(remote_id) for remote_id in ids))
        return time.perf_counter() - start, capabilities


def sequential_fhirclient(base_url: str, ids: list[str], capabilities: Capabilities) -> float:
    """The same reads with `fhirclient`, one request after the other (its server is sync)."""
    from fhirclient import client

    smart = client.FHIRClient(settings={"app_id": "bench", "api_base": base_url + "/"})
    server = smart.server
    categories = ",".join(sorted(PULLED_CATEGORIES))

    def pages(path: str) -> list[dict[str, Any]]:
        resources: list[dict[str, Any]] = []
        url: str | None = path
        while url is not None:
            page = server.request_json(url)
            resources.extend(e["resource"] for e in page.get("entry") or [])
            url = next(
                (link["url"] for link in page.get("link") or [] if link["relation"] == "next"),
                None,
            )
        return resources

    start = time.perf_counter()
    for remote_id in ids:
        server.request_json(f"Patient/{remote_id}")
        plans: list[dict[str, Any]] = []
        for kind in RECORD_TYPES:
            if not capabilities.supports_search_param(kind, "patient"):
                continue
            query = f"{kind}?patient={remote_id}"
            if kind == "Observation":
                query += f"&category={categories}"
            found = pages(query)
            if kind == "CarePlan":
                plans = found
        for element in CARE_PLAN_REFERENCES.values():
            for plan in plans:
                for reference in plan.get(element) or []:
                    server.request_json(reference["reference"])
    return time.perf_counter() - start


# ---- bulk ----------------------------------------------------------------------------------


def _observation(n: int) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Observation",
            "id": f"obs-{n}",
            "meta": {"versionId": "1", "lastUpdated": "2026-12-01T10:00:00.000Z"},
            "status": "final",
            "category": [{"coding": [{"code": "survey"}]}],
            "code": {"text": f"screening answer {n}"},
            "subject": {"reference": f"Patient/p{n % 500}"},
            "valueString": "x" * 300,
        }
    )


def serve_bulk(port: int, lines: int) -> None:
    """A minimal Bulk Data server: kick-off, one 202 with X-Progress, a manifest, one file
    generated line by line (the server holds no file in memory either)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    base = f"http://127.0.0.1:{port}/fhir"
    polls = {"count": 0}

    async def kick_off(request: Request) -> Response:
        return Response(status_code=202, headers={"Content-Location": f"{base}/status/1"})

    async def status(request: Request) -> Response:
        polls["count"] += 1
        if polls["count"] % 2:
            return Response(status_code=202, headers={"X-Progress": "half", "Retry-After": "0"})
        return JSONResponse(
            {
                "transactionTime": "2026-12-01T10:00:00.000Z",
                "requiresAccessToken": False,
                "output": [{"type": "Observation", "url": f"{base}/files/obs.ndjson"}],
                "error": [],
            }
        )

    async def file(request: Request) -> Response:
        async def body() -> Any:
            for n in range(lines):
                yield _observation(n) + b"\n"

        return StreamingResponse(body(), media_type="application/fhir+ndjson")

    app = Starlette(
        routes=[
            Route("/fhir/Group/{group}/$export", kick_off),
            Route("/fhir/status/1", status),
            Route("/fhir/files/obs.ndjson", file),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def bulk_peak(directory: Path, lines: int) -> tuple[float, float, int]:
    """(peak MiB, seconds, resources stored) of one Bulk pull of a file of `lines` lines."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_bulk, args=(port, lines), daemon=True
    )
    process.start()
    base_url = f"http://127.0.0.1:{port}/fhir"
    try:
        database = await fresh_database(directory, f"bulk-{lines}.db")
        connection_id = await connection_row(database, base_url)
        async with FhirClient(base_url, policy=LOOPBACK) as client:
            for _ in range(100):
                try:
                    await client.send("GET", "Group/g/$export")
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            export = BulkExport(client, LOOPBACK)

            async def progress(note: str | None) -> None:
                return None

            tracemalloc.start()
            tracemalloc.reset_peak()
            start = time.perf_counter()
            result = await pull_group(
                database,
                export,
                connection_id,
                "g",
                types=["Observation"],
                actor="bench",
                progress=progress,
            )
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        await database.dispose()
        assert not result.failures, result.failures[:3]
        return peak / 2**20, seconds, result.counts.get("Observation", 0)
    finally:
        process.terminate()
        process.join(10)


async def measure(arguments: argparse.Namespace, ehr: SeededEhr, directory: Path) -> None:
    plan = FaultPlan(enabled=False, latency_seconds=arguments.latency, page_size=20)
    with FaultProxy(ehr.base_url, plan) as proxy:
        database = await fresh_database(directory, "pull.db")
        plan.requests = 0
        seconds, capabilities = await pull_all(
            database,
            proxy.base_url,
            ehr.patient_ids,
            arguments.concurrency,
            arguments.patients_in_flight or arguments.concurrency,
        )
        requests = plan.requests - 1  # the /metadata of discovery
        await database.dispose()
        ideal = requests * arguments.latency / arguments.concurrency
        plan.requests = 0
        baseline = await asyncio.to_thread(
            sequential_fhirclient, proxy.base_url, ehr.patient_ids, capabilities
        )
        baseline_requests = plan.requests
    patients = len(ehr.patient_ids)
    print(f"patients pulled:          {patients}")
    print(f"requests:                 {requests} ({requests / patients:.1f} per patient)")
    print(f"latency per request:      {arguments.latency * 1000:.0f} ms")
    print(f"concurrency:              {arguments.concurrency} requests in flight")
    print(f"wall time:                {seconds:.2f} s")
    print(f"patients/s:               {patients / seconds:.1f}")
    print(f"ideal (req x lat / conc): {ideal:.2f} s")
    print(f"ratio to ideal:           {seconds / ideal:.2f}x (target <= 1.3x)")
    print(f"fhirclient sequential:    {baseline:.2f} s, {baseline_requests} requests")
    print(f"speed-up over fhirclient: {baseline / seconds:.1f}x")
    for lines in (arguments.bulk_lines, arguments.bulk_lines * 4):
        peak, bulk_seconds, stored = await bulk_peak(directory, lines)
        megabytes = lines * (len(_observation(lines)) + 1) / 2**20
        print(
            f"bulk NDJSON {lines:>7} lines (~{megabytes:.0f} MiB): peak {peak:.1f} MiB "
            f"(tracemalloc), {stored} stored in {bulk_seconds:.1f} s"
        )


def main(arguments: argparse.Namespace) -> None:
    binary = sekmet_binary()
    if binary is None:
        raise SystemExit("the `sekmet` binary is missing: pip install sekmet-fhir")
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        (directory / "ehr").mkdir()
        print(f"seeding {arguments.patients} patients ...", flush=True)
        ehr, process = start_seeded_sekmet(binary, directory / "ehr", arguments.patients)
        try:
            asyncio.run(measure(arguments, ehr, directory))
        finally:
            stop(process)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--patients-in-flight", type=int, default=0, help="default: concurrency")
    parser.add_argument("--bulk-lines", type=int, default=10_000)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main(parser.parse_args())
