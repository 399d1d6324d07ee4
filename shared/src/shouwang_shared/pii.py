"""Personal data at rest: AES-GCM encryption (rotating keys), an HMAC blind index for look-ups, and masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping

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


class UnknownKeyVersion(ValueError):
    """A ciphertext names a key version this process was not given (removed after a rotation, or never set)."""

    def __init__(self, version: int | None, known: list[int]) -> None:
        self.short = f"PII key version {version}"
        super().__init__(f"ciphertext sealed under {self.short}; this process holds versions {', '.join(map(str, known))}"
                         " (keep a retired key in PII_OLD_KEYS until its data is re-sealed)")


class BlindIndex:
    """A keyed, deterministic hash for uniqueness and look-up without decrypting (one key: it cannot rotate in place)."""

    def __init__(self, key: str, *, label: str = "pii-index") -> None:
        if not key:
            raise ValueError("the blind index key must be set")
        self._hmac = hmac.new(_key(key, label), digestmod=hashlib.sha256)  # keyed once; each index copies it

    def blind_index(self, value: str, *, context: str = "") -> str:
        """HMAC-SHA256 of `context:` + the normalised value (trimmed, upper case), as hex."""
        keyed = self._hmac.copy()
        keyed.update(f"{context}:{value.strip().upper()}".encode())
        return keyed.hexdigest()


class PiiCipher:
    """Encrypts and indexes personal fields; each ciphertext names its key version, so keys can rotate.

    `key` seals under `key_version`; `old_keys` ({version: key}) only open what was sealed before a rotation.
    """

    def __init__(self, key: str, index_key: str = "", *, key_version: int = 1, old_keys: Mapping[int, str] | None = None) -> None:
        if not key:
            raise ValueError("PII_KEY must be set")
        if not 1 <= key_version <= 255:
            raise ValueError(f"PII_KEY_VERSION must be 1-255, not {key_version}")
        old = dict(old_keys or {})
        if key_version in old:
            raise ValueError(f"PII_OLD_KEYS must not hold the current version {key_version}")
        if any(not 1 <= v <= 255 or not k for v, k in old.items()):
            raise ValueError("PII_OLD_KEYS: each version must be 1-255 with a key")
        self._aead = AESGCM(_key(key, "pii"))
        self._by_version = {v: AESGCM(_key(k, "pii")) for v, k in old.items()} | {key_version: self._aead}
        if index_key:  # the index's own method, bound here: one call per value, as hot as before (the roster import)
            self.blind_index = BlindIndex(index_key).blind_index
        self._prefix = bytes([key_version])  # the ciphertext's first byte

    def encrypt(self, plaintext: str, *, context: str = "") -> bytes:
        """Ciphertext = version byte + nonce + AES-GCM(plaintext), bound to `context` (e.g. the field name)."""
        nonce = os.urandom(_NONCE)
        return self._prefix + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str = "") -> str:
        """Recover the plaintext of `encrypt` with the key its version byte names; raises on tampering or a wrong context."""
        blob = bytes(blob)
        aead = self._by_version.get(blob[0]) if blob else None
        if aead is None:
            raise UnknownKeyVersion(blob[0] if blob else None, sorted(self._by_version))
        nonce, body = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        return aead.decrypt(nonce, body, context.encode()).decode()

    def blind_index(self, value: str, *, context: str = "") -> str:
        """A keyed, deterministic hash of the normalised value (replaced in `__init__` when an index key is given)."""
        raise ValueError("PII_INDEX_KEY must be set for blind indexes")


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
