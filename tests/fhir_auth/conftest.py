"""An app whose SSRF policy sees app.example.org as public (fake DNS), and a client JWKS URL
served by respx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from fastapi import FastAPI

from service.ehr.deps import get_url_policy
from service.ehr.url_policy import UrlPolicy
from tests.fhir_auth.support import ES384_KEY, JWKS_URL, RS384_KEY, jwks


async def _public_dns(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


def public_dns_policy() -> UrlPolicy:
    return UrlPolicy(resolver=_public_dns)


@pytest.fixture(autouse=True)
def fake_public_dns(app: FastAPI) -> Iterator[None]:
    app.dependency_overrides[get_url_policy] = public_dns_policy
    yield
    app.dependency_overrides.pop(get_url_policy, None)


@pytest.fixture
def jwks_route() -> Iterator[respx.Route]:
    """The client's JWKS URL, serving its RS384 and ES384 keys."""
    with respx.mock(assert_all_called=False) as mock:
        yield mock.get(JWKS_URL).respond(json=jwks(RS384_KEY, ES384_KEY))
