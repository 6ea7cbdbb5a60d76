"""Reading a JWS before verifying it: only to choose the client, issuer or key to verify it
with. Nothing read here is trusted until the signature and claims are checked."""

from __future__ import annotations

import json
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The protected header and the claims of a compact JWS; ValueError if it is not one."""
    try:
        compact = jws.extract_compact(token.encode())
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise ValueError("not a signed JWT") from exc
    if not isinstance(claims, dict):
        raise ValueError("the JWT claims are not a JSON object")
    return dict(compact.headers()), claims
