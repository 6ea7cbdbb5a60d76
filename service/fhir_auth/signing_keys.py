"""The keys that sign our /fhir access tokens.

The first token issued generates a key (RS384 with RSA 2048, or ES384 with P-384, as the
settings say) with the same generator as our EHR client keys (`service.smart.keys`), stores
it with the private part encrypted by SecretBox, and caches it in the process. Verification
uses every stored key; a `kid` this process has not seen yet (another process generated a key)
reloads the stored keys once.
"""

from __future__ import annotations

import asyncio

from joserfc.jwk import JWKRegistry, KeySet

from service.db.session import Database
from service.fhir_auth import repository
from service.fhir_auth.models import TokenSigningKey
from service.security.encryption import SecretBox
from service.smart.keys import SigningAlgorithm, SigningKey, generate_key_pair, load_signing_key


class TokenKeyring:
    def __init__(self, box: SecretBox, alg: SigningAlgorithm) -> None:
        self._box = box
        self._alg: SigningAlgorithm = alg
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
                pair = generate_key_pair(self._alg, self._box)
                async with database.transaction() as session:
                    session.add(
                        TokenSigningKey(
                            kid=pair.kid,
                            alg=pair.alg,
                            public_jwk=pair.public_jwk,
                            encrypted_private_pem=pair.encrypted_private_pem,
                        )
                    )
                key = pair.signing_key
            else:
                key = load_signing_key(self._alg, row.kid, row.encrypted_private_pem, self._box)
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
