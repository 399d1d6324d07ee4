"""Personal data at rest: AES-GCM encryption, an HMAC blind index for look-ups, and masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


def _key(material: str, label: str) -> bytes:
    """32 key bytes from base64 material, or derived from any other secret string."""
    try:
        raw = base64.b64decode(material, validate=True)
        if len(raw) == 32:
            return raw
    except ValueError:
        pass
    return hashlib.sha256(f"{label}:{material}".encode()).digest()


class PiiCipher:
    """Encrypts and indexes personal fields; the key version prefix allows key rotation."""

    def __init__(self, key: str, index_key: str, *, key_version: int = 1) -> None:
        if not key or not index_key:
            raise ValueError("PII_KEY and PII_INDEX_KEY must be set")
        self._aead = AESGCM(_key(key, "pii"))
        self._index_hmac = hmac.new(_key(index_key, "pii-index"), digestmod=hashlib.sha256)  # keyed once; each index copies it
        self._prefix = bytes([key_version])  # the ciphertext's first byte

    def encrypt(self, plaintext: str, *, context: str = "") -> bytes:
        """Ciphertext = version byte + nonce + AES-GCM(plaintext), bound to `context` (e.g. the field name)."""
        nonce = os.urandom(_NONCE)
        return self._prefix + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str = "") -> str:
        """Recover the plaintext of `encrypt`; raises on tampering or a wrong context."""
        blob = bytes(blob)
        nonce, body = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        return self._aead.decrypt(nonce, body, context.encode()).decode()

    def blind_index(self, value: str, *, context: str = "") -> str:
        """A keyed, deterministic hash of the normalised value, for uniqueness and look-up without decrypting."""
        normal = value.strip().upper()
        keyed = self._index_hmac.copy()
        keyed.update(f"{context}:{normal}".encode())
        return keyed.hexdigest()


def mask_national_id(value: str) -> str:
    """`330102199001011234` → `330***********1234`: region prefix and last four only."""
    if len(value) < 8:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_phone(value: str) -> str:
    """`13812345678` → `138****5678`."""
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    """`张三丰` → `张**`: the family name only."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)
