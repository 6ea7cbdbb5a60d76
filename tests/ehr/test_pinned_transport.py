"""Connections go where the SSRF policy's own resolution, made at connect time, allows: a host
is resolved by the policy (not again by httpx), a DNS-rebinding answer is refused when the
connection is made, and the next vetted address is tried when one refuses.

A real HTTP listener on loopback stands in for the EHR; the policy's resolver is the test's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from service.ehr.client import FhirClient
from service.ehr.errors import EhrUrlRefused
from service.ehr.pinned_transport import vetted_transport
from service.ehr.url_policy import UrlPolicy
from service.smart.backend_services import BackendServicesTokens
from tests.smart.test_backend_services import make_grant

PATIENT = b'{"resourceType": "Patient", "id": "p1"}'
PUBLIC = "93.184.216.34"


@dataclass
class Listener:
    port: int
    hosts: list[str] = field(default_factory=list)  # the Host header of each request


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        host = next(line for line in head.split("\r\n") if line.lower().startswith("host:"))
        served.hosts.append(host.split(":", 1)[1].strip())
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            + f"Content-Length: {len(PATIENT)}\r\nConnection: close\r\n\r\n".encode()
            + PATIENT
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    served = Listener(server.sockets[0].getsockname()[1])
    async with server:
        yield served


class Dns:
    """Answers from a script, one answer per lookup (an OSError is raised); the last repeats."""

    def __init__(self, *answers: list[str] | OSError, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, OSError):
            raise answer
        return answer


def policy(dns: Dns, *, private: bool) -> UrlPolicy:
    return UrlPolicy(allow_insecure_http=True, allow_private_networks=private, resolver=dns)


async def test_a_connection_goes_to_the_address_the_policy_resolved(listener: Listener) -> None:
    # No DNS server knows ehr.invalid: only the policy's resolver can have sent it here.
    dns = Dns(["127.0.0.1"])
    url = f"http://ehr.invalid:{listener.port}/fhir"
    async with FhirClient(url, policy=policy(dns, private=True)) as client:
        assert (await client.read("Patient", "p1"))["id"] == "p1"
    assert listener.hosts == [f"ehr.invalid:{listener.port}"]  # the server still sees the name
    assert "ehr.invalid" in dns.lookups


async def test_a_rebinding_answer_at_connect_time_is_refused(listener: Listener) -> None:
    # Public when the URL is checked, loopback when the connection is made.
    dns = Dns([PUBLIC], ["127.0.0.1"])
    url = f"http://rebind.example:{listener.port}/fhir"
    async with FhirClient(url, policy=policy(dns, private=False)) as client:
        with pytest.raises(EhrUrlRefused, match=r"127\.0\.0\.1, which is not a public address"):
            await client.read("Patient", "p1")
    assert dns.lookups == ["rebind.example", "rebind.example"]  # the check, then the connect
    assert listener.hosts == []  # nothing reached the internal address


async def test_a_mixed_answer_is_refused(listener: Listener) -> None:
    transport = vetted_transport(policy(Dns([PUBLIC, "127.0.0.1"]), private=False))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(EhrUrlRefused):
            await http.get(f"http://mixed.example:{listener.port}/")
    assert listener.hosts == []


async def test_the_next_vetted_address_is_tried_when_one_refuses(listener: Listener) -> None:
    # 127.0.0.2 is loopback too, but nothing listens there on this port.
    transport = vetted_transport(policy(Dns(["127.0.0.2", "127.0.0.1"]), private=True))
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get(f"http://two.example:{listener.port}/")
    assert response.status_code == 200
    assert listener.hosts == [f"two.example:{listener.port}"]


async def test_a_lookup_that_fails_at_connect_time_is_a_connection_failure_and_retried(
    listener: Listener,
) -> None:
    # Private networks allowed: the URL check does not resolve, each connection does.
    dns = Dns(OSError("Temporary failure in name resolution"), ["127.0.0.1"])

    async def no_wait(_seconds: float) -> None:
        return None

    url = f"http://flaky.example:{listener.port}/fhir"
    async with FhirClient(url, policy=policy(dns, private=True), sleep=no_wait) as client:
        assert (await client.read("Patient", "p1"))["id"] == "p1"
    assert len(dns.lookups) == 2  # the failed connect, then the retried one
    assert listener.hosts == [f"flaky.example:{listener.port}"]


async def test_the_lookup_counts_against_the_connect_timeout(listener: Listener) -> None:
    transport = vetted_transport(policy(Dns(["127.0.0.1"], delay=5.0), private=True))
    async with httpx.AsyncClient(transport=transport, timeout=0.2) as http:
        with pytest.raises(httpx.ConnectTimeout):
            await http.get(f"http://slow-dns.example:{listener.port}/")
    assert listener.hosts == []


async def test_a_token_request_is_held_to_the_policy_at_connect_time_too(
    listener: Listener,
) -> None:
    dns = Dns([PUBLIC], ["10.0.0.7"])
    tokens = BackendServicesTokens(policy=policy(dns, private=False), timeout_seconds=2)
    grant, _public_jwk = make_grant(token_url=f"http://auth.example:{listener.port}/token")
    with pytest.raises(EhrUrlRefused, match=r"10\.0\.0\.7"):
        await tokens.provider(grant).access_token()
    assert listener.hosts == []
