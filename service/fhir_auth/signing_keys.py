"""The keys that sign our /fhir access tokens.

The first token issued generates a key (RS384 with RSA 2048, or ES384 with P-384, as the
settings say), stores it with the private part encrypted by SecretBox, and caches it in the
process. Verification uses every stored key; a `kid` this process has not seen yet (another
process generated a key) reloads the stored keys once. Keys come from joserfc; the `kid` is
the RFC 7638 thumbprint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from joserfc.jwk import ECKey, JWKRegistry, KeySet, RSAKey

from service.db.session import Database
from service.fhir_auth import repository
from service.fhir_auth.models import TokenSigningKey
from service.security.encryption import SecretBox

TokenAlgorithm = Literal["RS384", "ES384"]
RSA_KEY_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    alg: TokenAlgorithm
    kid: str
    jwk: RSAKey | ECKey


def _generate(alg: TokenAlgorithm, box: SecretBox) -> tuple[TokenSigningKey, SigningKey]:
    jwk: RSAKey | ECKey
    if alg == "RS384":
        jwk = RSAKey.generate_key(RSA_KEY_BITS, private=True)
    else:
        jwk = ECKey.generate_key("P-384", private=True)
    kid = jwk.thumbprint()
    row = TokenSigningKey(
        kid=kid,
        alg=alg,
        public_jwk=dict(jwk.as_dict(private=False, alg=alg, use="sig", kid=kid)),
        encrypted_private_pem=box.encrypt(jwk.as_pem(private=True)),
    )
    return row, SigningKey(alg=alg, kid=kid, jwk=jwk)


def _load_private(row: TokenSigningKey, box: SecretBox) -> SigningKey:
    pem = box.decrypt(row.encrypted_private_pem)
    jwk: RSAKey | ECKey
    jwk = RSAKey.import_key(pem) if row.alg == "RS384" else ECKey.import_key(pem)
    alg: TokenAlgorithm = "RS384" if row.alg == "RS384" else "ES384"
    return SigningKey(alg=alg, kid=row.kid, jwk=jwk)


class TokenKeyring:
    def __init__(self, box: SecretBox, alg: TokenAlgorithm) -> None:
        self._box = box
        self._alg = alg
        self._signing: SigningKey | None = None
        self._public: KeySet | None = None
        self._lock = asyncio.Lock()

    async def signing_key(self, database: Database) -> SigningKey:
        """The key to sign with. The first call generates and commits one, in a transaction
        of its own, so a token is never signed by a key that was not stored."""
        async with self._lock:
            if self._signing is not None:
                return self._signing
            async with database.transaction(write=False) as session:
                row = await repository.newest_signing_key(session, self._alg)
            if row is None:
                row, key = _generate(self._alg, self._box)
                async with database.transaction() as session:
                    session.add(row)
            else:
                key = _load_private(row, self._box)
            self._signing = key
            self._public = None  # reload on the next verification, to include this key
            return key

    async def verification_keys(self, database: Database, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            if self._public is None or refresh:
                async with database.transaction(write=False) as session:
                    rows = await repository.signing_keys(session)
                self._public = KeySet([JWKRegistry.import_key(row.public_jwk) for row in rows])
            return self._public
