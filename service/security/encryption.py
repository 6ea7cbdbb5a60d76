"""Encryption at rest for private keys and OAuth tokens (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from service.errors import CaseBridgeError


class DecryptionFailed(CaseBridgeError):
    title = "Stored secret cannot be decrypted with the configured key"


class SecretBox:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise DecryptionFailed("ciphertext is corrupt or was made with another key") from exc

    def encrypt_text(self, plaintext: str) -> bytes:
        return self.encrypt(plaintext.encode())

    def decrypt_text(self, token: bytes) -> str:
        return self.decrypt(token).decode()
