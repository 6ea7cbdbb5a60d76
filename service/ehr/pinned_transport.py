"""An httpx transport that connects only where the SSRF policy allows, decided at connect time.

`UrlPolicy.check` vets a URL before it is called, but httpx resolves the host again when it
opens a connection: a DNS-rebinding server could answer the check with a public address and the
connection with an internal one. Here the transport's own network backend resolves the host
with the policy's resolver, refuses the connection if any address is not allowed, and connects
to the addresses it vetted. TLS still names the host (SNI and certificate checks use the URL's
host, not the address), so nothing else changes for the server.

A client given a transport does not take proxies from the environment (`HTTPS_PROXY` and the
like): these connections are made directly, or the check would be the proxy's to make.

httpx has no parameter for a connection pool's network backend; it is set on the pool that the
transport builds (`_pool._network_backend`, httpcore 1.x). A test pins that seam.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from service.ehr.url_policy import UrlPolicy


class _VettedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # One deadline for the lookup and every address, as httpcore's own backend keeps.
        try:
            async with asyncio.timeout(timeout) as deadline:
                return await self._connect(
                    host, port, deadline.when(), local_address, socket_options
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc

    async def _connect(
        self,
        host: str,
        port: int,
        deadline: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.AsyncNetworkStream:
        """`deadline`: event-loop time by which the lookup and every attempt are done."""
        try:
            addresses = await self._policy.addresses_to_connect(host, port)
        except OSError as exc:  # a DNS failure: transient, as httpx reports one
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        loop = asyncio.get_running_loop()
        failure: Exception | None = None
        for index, address in enumerate(addresses):
            # Each address gets an equal share of the time left, so that one that does not
            # answer leaves time for the next (no happy eyeballs: one attempt at a time).
            share = (
                None if deadline is None else (deadline - loop.time()) / (len(addresses) - index)
            )
            try:
                return await self._inner.connect_tcp(
                    address, port, share, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next address, as a resolver's list is meant
        assert failure is not None  # addresses_to_connect returns at least one
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not called on a URL's say-so")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpx's own default for a client.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def vetted_transport(
    policy: UrlPolicy, *, limits: httpx.Limits = DEFAULT_LIMITS
) -> httpx.AsyncHTTPTransport:
    """A transport whose every new connection goes to an address `policy` allows. (A client
    given a transport ignores its own `limits`: they go here.)"""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool: httpcore.AsyncConnectionPool = transport._pool
    assert hasattr(pool, "_network_backend"), "httpcore moved the pool's network backend"
    pool._network_backend = _VettedBackend(policy)
    return transport
