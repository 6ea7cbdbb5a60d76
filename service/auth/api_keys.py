"""API keys for service accounts: `cbk_` + 256 random bits, stored as SHA-256 only."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "cbk_"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, expected: str) -> bool:
    return hmac.compare_digest(key.encode(), expected.encode())
