"""Our signing keys for SMART client assertions, and the JWKS that publishes them.

Each connection signs its `private_key_jwt` assertions with its own key: RS384 (RSA 2048+) or
ES384 (P-384), the two algorithms SMART Backend Services requires servers to support. The `kid`
is the RFC 7638 thumbprint, so it is stable and derived from the key itself. Private keys are
stored as PKCS#8 PEM encrypted with SecretBox; they are only decrypted to sign.

Rotation publishes first and signs later: a new key enters the JWKS at once but signs only from
`signs_from` (the rotation plus an overlap longer than the JWKS caches EHRs keep, commonly five
minutes), so an EHR that cached the old JWKS refetches it before it meets the new `kid`
(RFC 7517 §5 key sets; SMART App Launch 2.x, Backend Services, "Registering a client": the EHR
fetches the client's JWKS URL and may cache it). The previous key signs until then and stays
published until `retire_after`, the longest assertion lifetime plus clock skew later, so an
assertion it signed a moment before the switch still verifies.
Keys are generated with joserfc (authlib's JOSE engine); nothing here builds a JWT by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True)
class ScheduledSigningKey:
    """A key and the moment it starts signing (`None`: since it was made)."""

    signs_from: datetime | None
    key: SigningKey


def key_signing_at(keys: Sequence[ScheduledSigningKey], now: datetime) -> SigningKey:
    """The key that signs at `now`: of `keys` (oldest first) whose time has come, the newest."""
    due = [k for k in keys if k.signs_from is None or k.signs_from <= now]
    if not due:
        raise ValueError("no key signs yet")
    return due[-1].key


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
