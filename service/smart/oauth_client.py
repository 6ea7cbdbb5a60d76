"""The one place that imports authlib's httpx OAuth client.

authlib 1.9 warns, once at import, that its httpx (0.x) integration is deprecated in favour of
httpx2. CaseBridge runs on httpx 0.28 and its tests fake EHRs with respx, which patches httpx,
so the integration is still the right one here. Only that one message is silenced, only for
this import, so any other authlib deprecation still fails the suite. Revisit when the project
moves to httpx2.
"""

from __future__ import annotations

import warnings

import authlib.deprecate  # noqa: F401  - installs authlib's own filter first, so ours wins

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="The httpx module is deprecated", category=DeprecationWarning
    )
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

__all__ = ["AsyncOAuth2Client", "OAuthError"]
