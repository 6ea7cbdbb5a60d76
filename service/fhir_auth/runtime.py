"""Per-process state of the SMART authorization server, created when the app starts: the
HTTP client that fetches client JWKS, their cache, our token keyring, and the verifier of the
external issuer's tokens when one is configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request

from service.auth.oidc import OidcVerifier
from service.ehr.pinned_transport import vetted_transport
from service.ehr.url_policy import UrlPolicy
from service.fhir_auth.client_keys import ClientKeyCache
from service.fhir_auth.enabled_clients import EnabledClients
from service.fhir_auth.signing_keys import TokenKeyring
from service.fhir_auth.verified_tokens import VerifiedTokens
from service.security.encryption import SecretBox
from service.settings import Settings

EXTERNAL_ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")
JWKS_FETCH_TIMEOUT_SECONDS = 10.0


def issuer(settings: Settings) -> str:
    """The `iss` of our access tokens."""
    return settings.public_base_url.rstrip("/")


def token_url(settings: Settings) -> str:
    """Our token endpoint: the `aud` a client assertion must name."""
    return f"{issuer(settings)}/auth/token"


def introspection_url(settings: Settings) -> str:
    return f"{issuer(settings)}/auth/introspect"


def fhir_base_url(settings: Settings) -> str:
    """The `aud` of our access tokens (and, by default, of the external issuer's)."""
    return f"{issuer(settings)}/fhir"


@dataclass
class FhirAuthRuntime:
    http: httpx.AsyncClient
    client_keys: ClientKeyCache
    keyring: TokenKeyring
    external: OidcVerifier | None
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)
    enabled_clients: EnabledClients = field(default_factory=EnabledClients)

    async def aclose(self) -> None:
        if self.external is not None:
            await self.external.aclose()
        await self.http.aclose()


def build_runtime(settings: Settings) -> FhirAuthRuntime:
    assert settings.encryption_key is not None  # the settings validator guarantees one
    # Client JWKS URLs are an admin's say-so: connections go only where the SSRF policy allows.
    http = httpx.AsyncClient(
        transport=vetted_transport(UrlPolicy.from_settings(settings)),
        timeout=JWKS_FETCH_TIMEOUT_SECONDS,
        follow_redirects=False,
    )
    external = None
    if settings.fhir_external_issuer and settings.fhir_external_jwks_url:
        external = OidcVerifier(
            settings.fhir_external_issuer,
            settings.fhir_external_jwks_url,
            settings.fhir_external_audience or fhir_base_url(settings),
            EXTERNAL_ALGORITHMS,
            refetch_interval_seconds=settings.jwks_refetch_interval_seconds,
        )
    return FhirAuthRuntime(
        http=http,
        client_keys=ClientKeyCache(
            http, refetch_interval_seconds=settings.jwks_refetch_interval_seconds
        ),
        keyring=TokenKeyring(
            SecretBox(settings.encryption_key.get_secret_value()), settings.fhir_token_signing_alg
        ),
        external=external,
    )


@asynccontextmanager
async def fhir_auth_lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = build_runtime(app.state.settings)
    app.state.fhir_auth = runtime
    try:
        yield
    finally:
        await runtime.aclose()


async def get_runtime(request: Request) -> FhirAuthRuntime:
    # async: a plain `def` dependency would run in a worker thread on every request.
    runtime: FhirAuthRuntime = request.app.state.fhir_auth
    return runtime


RuntimeDep = Annotated[FhirAuthRuntime, Depends(get_runtime)]
