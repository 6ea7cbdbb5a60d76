"""Overload benchmark of `/fhir`: does admission control keep accepted requests fast?

Starts CaseBridge (one uvicorn process on 127.0.0.1, as `bench.fhir_load` does), seeds a few
cases and gets a SMART access token, then, for one representative request (a CarePlan read,
or a search with `--operation search`):

1. the unloaded p99: `--unloaded` requests one after another on one connection;
2. the capacity: requests/s with `--connections` connections, each sending its next request
   when the last one is answered, for `--seconds`;
3. the overload: requests sent on a fixed schedule at `--factor` x the capacity (an open loop:
   a slow answer does not slow the sender) for `--seconds`, on up to `--max-connections`
   connections. A request's time runs from its scheduled send, so time spent waiting for a
   free connection counts too.

It prints the counts of accepted (2xx), 429 and 503 answers, the p99 of the accepted ones
against the unloaded p99 (target: under 4x), and the longest any request waited for its
answer (target: under 2 s). It prints figures; it is not a pass/fail test. Loopback only,
bounded counts (at most `--max-requests` in the overload).

    python -m bench.overload [--operation read|search] [--seconds 5] [--factor 4]
                             [--rate N] [--database-url postgresql+asyncpg://...]

The in-flight bound runs with the service's settings (`CASEBRIDGE_MAX_IN_FLIGHT`,
`CASEBRIDGE_IN_FLIGHT_ADAPTIVE` and friends, from the environment or their defaults). In the
capacity phase a connection answered 503 waits 1 s (its Retry-After) before it sends again: the
adaptive limit may hold fewer requests than there are connections, and resending at once would
measure a busy loop of refusals. `--rate` offers a fixed rate instead of factor x capacity, so
that two configurations face the same load. The per-client /fhir rate limit is set so high that
it never acts: one client drives every phase, and a limit would cut the unloaded and capacity
phases short (the tests show the 429s); a 429 counted here would be the per-address limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import uvloop
from pydantic import SecretStr

from bench.fhir_load import API_KEY, free_port, seed, serve, token, uvicorn
from service.settings import Settings

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class Connection:
    """One keep-alive HTTP/1.1 connection: a request out, the whole answer in. Minimal on
    purpose: a full client's own cost would cap the load it can offer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        if length is None:
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        await self.reader.readexactly(int(length.group(1)))
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


@dataclass
class Results:
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: list[float] = field(default_factory=list)  # seconds, of 2xx answers
    longest: float = 0.0
    errors: int = 0

    def record(self, status: int, seconds: float) -> None:
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.accepted.append(seconds)
        self.longest = max(self.longest, seconds)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98] if samples else 0.0


def raw_request(url: str, token_value: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token_value}\r\nAccept: application/fhir+json\r\n\r\n"
    ).encode()
    return str(parts.hostname), int(parts.port or 80), request


async def unloaded(host: str, port: int, request: bytes, count: int) -> list[float]:
    connection = await Connection.open(host, port)
    try:
        for _ in range(50):  # warm up
            await connection.send(request)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            status = await connection.send(request)
            times.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"unloaded request answered {status}")
        return times
    finally:
        connection.close()


async def capacity(host: str, port: int, request: bytes, connections: int, seconds: float) -> float:
    deadline = time.perf_counter() + seconds
    answered = 0

    async def loop() -> None:
        nonlocal answered
        connection = await Connection.open(host, port)
        try:
            while time.perf_counter() < deadline:
                status = await connection.send(request)
                if status == 200:
                    answered += 1
                elif status == 503:
                    # As a client honouring Retry-After would (the adaptive limit may hold fewer
                    # than these connections); resending at once would measure a busy loop of
                    # refusals, not the capacity.
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.perf_counter())))
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    return answered / (time.perf_counter() - started)


async def overload(
    host: str, port: int, request: bytes, rate: float, seconds: float, max_connections: int
) -> tuple[Results, float]:
    """Send `rate` requests/s on schedule; returns the results and the rate really offered."""
    results = Results()
    idle: list[Connection] = []
    opened = 0
    free = asyncio.Condition()
    total = int(rate * seconds)

    async def one(scheduled: float) -> None:
        nonlocal opened
        async with free:
            while not idle and opened >= max_connections:
                await free.wait()
            connection = idle.pop() if idle else None
            if connection is None:
                opened += 1
        try:
            if connection is None:
                connection = await Connection.open(host, port)
            status = await connection.send(request)
        except (OSError, asyncio.IncompleteReadError):
            results.errors += 1
            results.longest = max(results.longest, time.perf_counter() - scheduled)
            async with free:
                opened -= 1
                free.notify()
            return
        results.record(status, time.perf_counter() - scheduled)
        async with free:
            idle.append(connection)
            free.notify()

    tasks = []
    started = time.perf_counter()
    for n in range(total):
        scheduled = started + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    offered = total / (time.perf_counter() - started)
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    return results, offered


async def measure(args: argparse.Namespace, url: str, token_value: str, settings: Settings) -> None:
    host, port, request = raw_request(url, token_value)
    base = await unloaded(host, port, request, args.unloaded)
    base_p99 = p99(base)
    print(
        f"unloaded: p50 {statistics.median(base) * 1000:.2f} ms, p99 {base_p99 * 1000:.2f} ms"
        f" ({args.unloaded} requests, one connection)",
        flush=True,
    )
    # No more connections than slots: a 503 in this phase would understate the capacity.
    connections = min(args.connections, settings.max_in_flight or args.connections)
    rate = await capacity(host, port, request, connections, args.seconds)
    print(f"capacity: {rate:.0f} requests/s ({connections} connections)", flush=True)
    target = min(args.rate or rate * args.factor, args.max_requests / args.seconds)
    results, offered = await overload(
        host, port, request, target, args.seconds, args.max_connections
    )
    accepted = results.statuses.get(200, 0)
    other = {s: n for s, n in results.statuses.items() if s not in (200, 429, 503)}
    loaded_p99 = p99(results.accepted)
    print(
        f"overload: {offered:.0f} requests/s offered ({offered / rate:.1f}x capacity) "
        f"for {args.seconds:g} s"
    )
    print(
        f"  answers: {accepted} accepted, {results.statuses.get(429, 0)} x 429, "
        f"{results.statuses.get(503, 0)} x 503"
        + (f", other {other}" if other else "")
        + (f", {results.errors} connection errors" if results.errors else "")
    )
    print(
        f"  accepted: p50 {statistics.median(results.accepted) * 1000:.2f} ms, "
        f"p99 {loaded_p99 * 1000:.2f} ms = {loaded_p99 / base_p99:.2f}x the unloaded p99 "
        "(target < 4x)"
        if results.accepted
        else "  accepted: none"
    )
    print(f"  longest wait of any request: {results.longest:.3f} s (target < 2 s)")
    print(f"  in-flight bound after it: {await bound_state(url)}", flush=True)


async def bound_state(url: str) -> str:
    """The limit, in flight and baseline gauges of the server's `/metrics`."""
    parts = urlsplit(url)
    async with httpx.AsyncClient(base_url=f"{parts.scheme}://{parts.netloc}") as http:
        response = await http.get("/metrics", headers={"X-API-Key": API_KEY})
    values = {}
    for line in response.text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("casebridge_in_flight_"):
            values[name.removeprefix("casebridge_in_flight_")] = float(value)
    if not values:
        return "no gauges"
    return (
        f"limit {values.get('limit', 0):g}, "
        f"baseline {values.get('baseline_seconds', 0) * 1000:.2f} ms"
    )


def describe_bound(settings: Settings) -> str:
    if not settings.max_in_flight:
        return "in-flight bound: none (CASEBRIDGE_MAX_IN_FLIGHT=0)"
    queue = (
        f"{settings.in_flight_queue} waiting for at most {settings.in_flight_max_wait_seconds:g} s"
    )
    if not settings.in_flight_adaptive:
        return f"in-flight bound: fixed, {settings.max_in_flight} at once, {queue}"
    return (
        f"in-flight bound: adaptive, {settings.min_in_flight}..{settings.max_in_flight} at once "
        f"(latency tolerance {settings.in_flight_latency_tolerance:g}x), {queue}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operation", choices=("read", "search"), default="read")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument(
        "--rate",
        type=float,
        help="requests/s to offer in the overload (default: factor x capacity)",
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--unloaded", type=int, default=500)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument(
        "--database-url",
        help="an empty database for CaseBridge (default: a temporary SQLite file)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        database = args.database_url or f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        unlimited = str(10**9)
        env = os.environ | {
            "CASEBRIDGE_DATABASE_URL": database,
            "CASEBRIDGE_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "CASEBRIDGE_BOOTSTRAP_API_KEY": API_KEY,
            "CASEBRIDGE_AUTO_MIGRATE": "true",
            "CASEBRIDGE_FHIR_ACCESS_TOKEN_LIFETIME_SECONDS": "3600",
            "CASEBRIDGE_PUBLIC_BASE_URL": base,
            "CASEBRIDGE_RATE_LIMIT_FHIR_CLIENT_PER_SECOND": unlimited,
            "CASEBRIDGE_RATE_LIMIT_FHIR_CLIENT_BURST": unlimited,
        }
        # The admission settings the server will read from the same environment.
        settings = Settings(
            _env_file=None, encryption_key=SecretStr(env["CASEBRIDGE_ENCRYPTION_KEY"])
        )
        print(describe_bound(settings), flush=True)
        with serve(uvicorn("service.main:app", port), base + "/readyz", directory / "cb.log", env):
            plans = asyncio.run(seed(base, args.cases))
            access_token = token(base)
            url = (
                f"{base}/fhir/CarePlan/{plans[0]['id']}"
                if args.operation == "read"
                else f"{base}/fhir/CarePlan?_count=10"
            )
            print(f"operation: {args.operation} ({urlsplit(url).path})", flush=True)
            # uvloop, as the server runs: the load generator's own cost must stay small.
            uvloop.run(measure(args, url, access_token, settings))


if __name__ == "__main__":
    main()
