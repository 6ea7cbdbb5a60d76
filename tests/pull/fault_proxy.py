"""A reverse proxy of the tests' own, on loopback, between CaseBridge and the FHIR server: it
injects faults (429 and 503 with Retry-After, timeouts, truncated and garbage pages, `next`
link loops) and latency, and forces small pages so that searches page.

The loops are deterministic: the first `$everything` answers link back to themselves, so those
patients are read type by type, and the first Observation searches that reach a second page are
linked back to their first. The way back to the first page (`_offset=0`, a URL only a loop
names) is served without periodic faults, so that what the client meets there is the loop.

It runs under uvicorn in a thread. Bodies are rewritten so that the server's own URLs (self
and next links) name the proxy, as they would behind a real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Self

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.smart.sekmet_server import free_port


@dataclass
class FaultPlan:
    """Which request numbers fail, and how. `enabled=False` forwards everything as it is."""

    enabled: bool = True
    rate_limit_every: int = 9  # 429, Retry-After: 0
    unavailable_every: int = 11  # 503, Retry-After: 0
    timeout_every: int = 23  # answered after the client's timeout
    truncated_every: int = 29  # 200 with half a Bundle
    garbage_every: int = 31  # 200 with an HTML error page
    everything_loops: int = 8  # the first $everything answers link back to themselves
    loops: int = 8  # Observation page 2 links back to page 1, this many times
    timeout_seconds: float = 1.0
    latency_seconds: float = 0.0
    page_size: int = 5
    injected: Counter[str] = field(default_factory=Counter)
    requests: int = 0


class FaultProxy:
    def __init__(self, upstream: str, plan: FaultPlan) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = plan
        self.port = free_port()
        upstream_path = httpx.URL(self.upstream).path
        self.base_url = f"http://127.0.0.1:{self.port}{upstream_path}"
        self._lock = threading.Lock()
        self._app = Starlette(
            routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT"])],
            lifespan=self._lifespan,
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                loop="asyncio",
                timeout_graceful_shutdown=2,
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._http: httpx.AsyncClient | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fault proxy did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def _next_number(self) -> int:
        with self._lock:
            self.plan.requests += 1
            return self.plan.requests

    def _fault(self, number: int, request: Request) -> str | None:
        plan = self.plan
        if not plan.enabled:
            return None
        # The loops first: a periodic fault on the same request would hide them.
        if (
            request.url.path.endswith("/$everything")
            and plan.injected["everything-loop"] < plan.everything_loops
        ):
            return "everything-loop"
        offset = request.query_params.get("_offset")
        if request.url.path.endswith("/Observation"):
            if offset == str(plan.page_size) and plan.injected["loop"] < plan.loops:
                return "loop"
            if offset == "0":
                return None
        for kind, every in (
            ("rate-limited", plan.rate_limit_every),
            ("unavailable", plan.unavailable_every),
            ("timeout", plan.timeout_every),
            ("truncated", plan.truncated_every),
            ("garbage", plan.garbage_every),
        ):
            if every and number % every == every // 2:
                return kind
        return None

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=60.0) as http:
            self._http = http
            yield

    async def _forward(self, request: Request) -> Response:
        assert self._http is not None
        number = self._next_number()
        fault = self._fault(number, request)
        if fault is not None:
            with self._lock:
                self.plan.injected[fault] += 1
        if self.plan.latency_seconds:
            await asyncio.sleep(self.plan.latency_seconds)
        if fault == "rate-limited":
            return Response(status_code=429, headers={"Retry-After": "0"})
        if fault == "unavailable":
            return Response(status_code=503, headers={"Retry-After": "0"})
        if fault == "timeout":
            await asyncio.sleep(self.plan.timeout_seconds + 0.5)
        query: list[tuple[str, str | int | float | bool | None]] = list(
            request.query_params.multi_items()
        )
        is_search = request.method == "GET" and "/" not in request.url.path.rstrip("/").split(
            "/fhir/", 1
        )[-1].strip("/")
        if is_search and not any(name == "_count" for name, _ in query):
            query.append(("_count", str(self.plan.page_size)))
        upstream = await self._http.request(
            request.method,
            self.upstream + request.url.path.split("/fhir", 1)[-1],
            params=query,
            content=await request.body(),
            headers={
                k: v
                for k, v in request.headers.items()
                if k.lower() in ("content-type", "accept", "authorization", "prefer", "if-match")
            },
        )
        body = upstream.content.replace(self.upstream.encode(), self.base_url.encode())
        if fault == "truncated":
            body = body[: len(body) // 2]
        elif fault == "garbage":
            body = b"<html><body>502 upstream hiccup</body></html>"
        elif fault in ("loop", "everything-loop"):
            # The page's next link (added if it is the last page) goes back to the first page.
            first = (
                request.url
                if fault == "everything-loop"
                else request.url.include_query_params(_offset="0")
            )
            page = orjson.loads(body)
            links = [link for link in page.get("link") or [] if link.get("relation") != "next"]
            page["link"] = [*links, {"relation": "next", "url": str(first)}]
            body = orjson.dumps(page)
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() in ("content-type", "etag", "location")
        }
        return Response(body, status_code=upstream.status_code, headers=headers)
