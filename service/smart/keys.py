"""Our signing keys for SMART client assertions, and the JWKS that publishes them.

Each connection signs its `private_key_jwt` assertions with its own key: RS384 (RSA 2048+) or
ES384 (P-384), the two algorithms SMART Backend Services requires servers to support. The `kid`
is the RFC 7638 thumbprint, so it is stable and derived from the key itself. Private keys are
stored as PKCS#8 PEM encrypted with SecretBox; they are only decrypted to sign.

Rotation: the new key signs from the moment it exists; the previous key stays in the JWKS until
`retire_after`, so an EHR holding an assertion signed a moment ago (or a cached JWKS) can still
verify it. Retiring after the longest assertion lifetime plus clock skew is enough for that.
Keys are generated with joserfc (authlib's JOSE engine); nothing here builds a JWT by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from joserfc.jwk import ECKey, RSAKey

from service.security.encryption import SecretBox

SigningAlgorithm = Literal["RS384", "ES384"]
SIGNING_ALGORITHMS: tuple[SigningAlgorithm, ...] = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)
RSA_KEY_BITS = 2048

SigningJwk = RSAKey | ECKey


@dataclass(frozen=True)
class SigningKey:
    """A private key ready to sign assertions: what the Backend Services client needs."""

    alg: SigningAlgorithm
    kid: str
    jwk: SigningJwk


@dataclass(frozen=True)
class NewKeyPair:
    """A freshly generated key, in the shapes the connection registry stores."""

    alg: SigningAlgorithm
    kid: str
    public_jwk: dict[str, Any]
    encrypted_private_pem: bytes
    signing_key: SigningKey


class PublishableKey(Protocol):
    """What the JWKS needs from a stored key row."""

    @property
    def public_jwk(self) -> dict[str, Any]: ...

    @property
    def retire_after(self) -> datetime | None: ...


def generate_key_pair(alg: SigningAlgorithm, box: SecretBox) -> NewKeyPair:
    jwk: SigningJwk
    if alg == "RS384":
        jwk = RSAKey.generate_key(RSA_KEY_BITS, private=True)
    elif alg == "ES384":
        jwk = ECKey.generate_key("P-384", private=True)
    else:  # pragma: no cover - guarded by the Literal type, kept for untyped callers
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    kid = jwk.thumbprint()
    public_jwk = dict(jwk.as_dict(private=False, alg=alg, use="sig", kid=kid))
    return NewKeyPair(
        alg=alg,
        kid=kid,
        public_jwk=public_jwk,
        encrypted_private_pem=box.encrypt(jwk.as_pem(private=True)),
        signing_key=SigningKey(alg=alg, kid=kid, jwk=jwk),
    )


def load_signing_key(
    alg: SigningAlgorithm, kid: str, encrypted_private_pem: bytes, box: SecretBox
) -> SigningKey:
    pem = box.decrypt(encrypted_private_pem)
    jwk: SigningJwk = RSAKey.import_key(pem) if alg == "RS384" else ECKey.import_key(pem)
    return SigningKey(alg=alg, kid=kid, jwk=jwk)


def retirement_time(rotated_at: datetime) -> datetime:
    """When a key replaced at `rotated_at` may leave the JWKS."""
    return rotated_at + MAX_ASSERTION_LIFETIME + CLOCK_SKEW_ALLOWANCE


def is_published(key: PublishableKey, now: datetime) -> bool:
    return key.retire_after is None or key.retire_after > now


def build_jwks(keys: Iterable[PublishableKey], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The public JWKS: every key that is active or still inside its retirement grace period."""
    return {"keys": [dict(key.public_jwk) for key in keys if is_published(key, now)]}
