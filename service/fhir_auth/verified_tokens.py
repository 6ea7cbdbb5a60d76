"""Access tokens whose signature this process has already verified, with their claims.

Verifying an ES384 signature costs about half a millisecond, and an app sends the same token
with every request for its whole lifetime. The claims (exp included) are still checked on each
use; only the signature check is remembered. Bounded, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

MAX_TOKENS = 10_000


class VerifiedTokens:
    def __init__(self, capacity: int = MAX_TOKENS) -> None:
        self._capacity = capacity
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def __contains__(self, token: object) -> bool:
        return token in self._claims

    def get(self, token: str) -> dict[str, Any] | None:
        claims = self._claims.get(token)
        if claims is not None:
            self._claims.move_to_end(token)
        return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        self._claims[token] = claims
        self._claims.move_to_end(token)
        while len(self._claims) > self._capacity:
            self._claims.popitem(last=False)
