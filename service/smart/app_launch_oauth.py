"""The OAuth side of SMART App Launch, all through authlib: the authorization URL with PKCE
(S256 only), the code exchange, and the refresh grant.

A connection whose EHR supports `private_key_jwt` is a confidential asymmetric client and signs
with its connection key, exactly as Backend Services does; otherwise it is a public client
(PKCE alone protects the code).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from service.ehr.pinned_transport import vetted_transport
from service.ehr.url_policy import UrlPolicy
from service.smart.backend_services import ASSERTION_LIFETIME_SECONDS, SmartPrivateKeyJWT
from service.smart.keys import SigningKey
from service.smart.oauth_client import AsyncOAuth2Client
from service.smart.token_requests import TokenResponse, checked_token, mapped_token_errors


@dataclass(frozen=True)
class LaunchClient:
    client_id: str
    authorization_endpoint: str
    token_endpoint: str
    redirect_uri: str
    signing_key: SigningKey | None  # None: a public client


def authorization_url(
    client: LaunchClient,
    *,
    scopes: list[str],
    state: str,
    code_verifier: str,
    aud: str,
    launch: str | None,
) -> str:
    """Where the browser goes to log in. `aud` is the FHIR base URL (SMART requires it)."""
    url: str = prepare_grant_uri(
        client.authorization_endpoint,
        client.client_id,
        "code",
        redirect_uri=client.redirect_uri,
        scope=" ".join(scopes),
        state=state,
        code_challenge=create_s256_code_challenge(code_verifier),
        code_challenge_method="S256",
        aud=aud,
        launch=launch,
    )
    return url


class LaunchTokens:
    """Code exchange and refresh against one EHR's token endpoint."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._timeout_seconds = timeout_seconds
        self._clock = clock

    async def exchange_code(
        self, client: LaunchClient, code: str, code_verifier: str
    ) -> TokenResponse:
        return await self._token(
            client,
            "authorization_code",
            code=code,
            code_verifier=code_verifier,
            redirect_uri=client.redirect_uri,
        )

    async def refresh(self, client: LaunchClient, refresh_token: str) -> TokenResponse:
        return await self._token(client, "refresh_token", refresh_token=refresh_token)

    async def _token(self, client: LaunchClient, grant_type: str, **params: str) -> TokenResponse:
        url = client.token_endpoint
        await self._policy.check(url)
        requested_at = self._clock()
        auth_method: Any = (
            "none"
            if client.signing_key is None
            else SmartPrivateKeyJWT(client.signing_key, ASSERTION_LIFETIME_SECONDS)
        )
        async with (
            mapped_token_errors(url, grant_type),
            AsyncOAuth2Client(
                client_id=client.client_id,
                token_endpoint_auth_method=auth_method,
                redirect_uri=client.redirect_uri,
                transport=vetted_transport(self._policy),
                timeout=self._timeout_seconds,
                follow_redirects=False,
            ) as oauth,
        ):
            token = await oauth.fetch_token(url, grant_type=grant_type, **params)
        return checked_token(dict(token), requested_at, url)
