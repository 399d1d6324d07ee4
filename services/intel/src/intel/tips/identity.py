"""Receipt codes and secrets, claim references and pseudonyms: keyed hashes, nothing reversible. Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud on a hotline


def _key(material: str) -> bytes:
    try:
        raw = base64.b64decode(material, validate=True)
        if len(raw) >= 16:
            return raw
    except ValueError:
        pass
    return hashlib.sha256(f"intel-receipt:{material}".encode()).digest()


def _encode(raw: bytes, length: int) -> str:
    number = int.from_bytes(raw, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


class ReceiptKeys:
    """Keyed hashes for everything that must link without identifying (pseudonyms under a key of their own)."""

    def __init__(self, key: str, pseudonym_key: str) -> None:
        if not key:
            raise ValueError("RECEIPT_KEY must be set")
        if not pseudonym_key:
            raise ValueError("PSEUDONYM_KEY must be set")
        self._key = _key(key)
        self._pseudonym_key = _key(pseudonym_key)

    def _mac(self, label: str, value: str) -> bytes:
        return hmac.new(self._key, f"{label}:{value}".encode(), hashlib.sha256).digest()

    def _pseudonym_mac(self, label: str, value: str) -> bytes:
        return hmac.new(self._pseudonym_key, f"{label}:{value}".encode(), hashlib.sha256).digest()

    def new_receipt(self, idempotency_key: str | None) -> tuple[str, str]:
        """(code, secret) for an anonymous tip: derived from the client's idempotency key so a retry gets the same pair."""
        seed = self._mac("anon-receipt", idempotency_key) if idempotency_key else secrets.token_bytes(32)
        code = "R" + _encode(hashlib.sha256(b"code" + seed).digest(), 11)
        secret = _encode(hashlib.sha256(b"secret" + seed).digest(), 16)
        return code, secret

    def code_hash(self, code: str) -> str:
        """Look-up hash of a receipt code (the code itself is never stored)."""
        return self._mac("code", code.strip().upper()).hex()

    def secret_hash(self, secret: str) -> str:
        """Stored hash of a receipt secret."""
        return self._mac("secret", secret.strip().upper()).hex()

    def secret_matches(self, secret: str, stored_hash: str | None) -> bool:
        """Constant-time check of a secret against its stored hash (a dummy when the code is unknown)."""
        expected = stored_hash or self._mac("dummy", "no-such-receipt").hex()
        return hmac.compare_digest(self.secret_hash(secret), expected) and stored_hash is not None

    def claim_ref(self, code: str) -> str:
        """What rewards knows an anonymous reporter by: a keyed hash of the receipt code."""
        return self._mac("claim", code.strip().upper()).hex()[:32]

    def idempotency_hash(self, scope: str, key: str) -> str:
        """Unique key of a submission: the client's key within its scope (a volunteer, or anonymous)."""
        return self._mac("idem", f"{scope}:{key}").hex()

    def analyst_pseudonym(self, *, volunteer_id: str | None, claim_ref: str | None) -> str:
        """The stable name analysts see for a reporter: never the real name."""
        if volunteer_id:
            return "志愿者-" + _encode(self._pseudonym_mac("analyst", volunteer_id), 6)
        return "匿名-" + _encode(self._pseudonym_mac("analyst-anon", claim_ref or ""), 6)

    def liaison_pseudonym(self, case_id: str, *, volunteer_id: str | None, claim_ref: str | None) -> str:
        """A pseudonym for one informant of one case, as the police see it (unlinkable across cases)."""
        who = f"v:{volunteer_id}" if volunteer_id else f"a:{claim_ref}"
        return "线人-" + _encode(self._pseudonym_mac("liaison", f"{case_id}:{who}"), 8)
