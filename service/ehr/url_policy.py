"""SSRF policy for every URL we are about to call on an admin's or an EHR's say-so.

Base URLs come from admins and endpoints come from the EHR's own discovery documents, so both are
untrusted: a hostile or compromised EHR could otherwise point us at cloud metadata services or
the internal network. The policy refuses non-https URLs and addresses that are not globally
routable, unless the settings explicitly allow them (dev and loopback tests).

Redirects are never followed by httpx (`follow_redirects=False`); the FHIR client follows a
redirect only when it stays on the same origin (`same_origin`).

The check runs before a URL is called; httpx would resolve the host again when it connects, so
the clients that call such URLs connect through `pinned_transport.vetted_transport`, which
resolves and checks at connect time too (`addresses_to_connect`) and connects to the addresses
it checked: a DNS-rebinding server cannot swap in an internal address between the two.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from service.ehr.errors import EhrUrlRefused
from service.settings import Settings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_with_system_dns(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public_address(address: IpAddress) -> bool:
    # An IPv4-mapped IPv6 address (::ffff:10.0.0.1) reaches the IPv4 host: judge that one.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


def same_origin(first: str | httpx.URL, second: str | httpx.URL) -> bool:
    a, b = httpx.URL(first), httpx.URL(second)
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


@dataclass(frozen=True)
class UrlPolicy:
    allow_insecure_http: bool = False
    allow_private_networks: bool = False
    resolver: Resolver = field(default=resolve_with_system_dns)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver | None = None) -> UrlPolicy:
        return cls(
            allow_insecure_http=settings.allow_insecure_http,
            allow_private_networks=settings.allow_private_networks,
            resolver=resolver or resolve_with_system_dns,
        )

    async def check(self, url: str | httpx.URL) -> httpx.URL:
        """Return the parsed URL, or raise EhrUrlRefused saying why it may not be called."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise EhrUrlRefused(f"not a valid URL: {exc}", url=str(url)) from exc
        text = str(parsed)
        if parsed.scheme not in ("https", "http"):
            raise EhrUrlRefused(f"scheme {parsed.scheme!r} is not allowed", url=text)
        if parsed.scheme == "http" and not self.allow_insecure_http:
            raise EhrUrlRefused("only https URLs are allowed", url=text)
        if not parsed.host:
            raise EhrUrlRefused("the URL has no host", url=text)
        if parsed.userinfo:
            raise EhrUrlRefused("credentials in the URL are not allowed", url=text)
        if self.allow_private_networks:
            return parsed
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._refuse_private(parsed.host, await self._addresses(parsed.host, port, text), text)
        return parsed

    async def addresses_to_connect(self, host: str, port: int) -> list[str]:
        """Where a connection to `host:port` may go: every address it resolves to now, each
        allowed; EhrUrlRefused if any is not (a mixed answer is a rebinding attempt too).
        OSError if it does not resolve now: a failure to connect, retried like one."""
        addresses = await self._resolve(host, port)
        if not addresses:
            raise OSError(f"{host} does not resolve to any address")
        if not self.allow_private_networks:
            self._refuse_private(host, addresses, f"{host}:{port}")
        return list(dict.fromkeys(str(address) for address in addresses))

    @staticmethod
    def _refuse_private(host: str, addresses: list[IpAddress], url: str) -> None:
        for address in addresses:
            if not is_public_address(address):
                raise EhrUrlRefused(
                    f"{host} resolves to {address}, which is not a public address", url=url
                )

    async def _addresses(self, host: str, port: int, url: str) -> list[IpAddress]:
        try:
            resolved = await self._resolve(host, port)
        except OSError as exc:
            raise EhrUrlRefused(f"cannot resolve {host}: {exc}", url=url) from exc
        if not resolved:
            raise EhrUrlRefused(f"{host} does not resolve to any address", url=url)
        return resolved

    async def _resolve(self, host: str, port: int) -> list[IpAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        # Scoped IPv6 literals come back as "fe80::1%eth0"; the zone is not part of the address.
        return [
            ipaddress.ip_address(entry.split("%", 1)[0])
            for entry in await self.resolver(host, port)
        ]
