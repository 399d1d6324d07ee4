"""A client's Idempotency-Key on a submission: checked, and fingerprinted with what was sent (pure)."""

from __future__ import annotations

import hashlib

import orjson
from pydantic import BaseModel

from shouwang_shared.errors import Unprocessable

ANONYMOUS_KEY_MIN = 16  # an anonymous key is the only thing tying a retry to its first try: make it unguessable


def checked_key(key: str | None, *, anonymous: bool) -> str | None:
    """The key, or a 422 naming the header when it is too short or too long to be a client's unique id."""
    if key is None:
        return None
    if not 8 <= len(key) <= 200:
        raise Unprocessable("幂等键长度应为8到200个字符", field="Idempotency-Key")
    if anonymous and len(key) < ANONYMOUS_KEY_MIN:
        raise Unprocessable(f"匿名提交的幂等键至少 {ANONYMOUS_KEY_MIN} 个字符（建议使用 UUID）", field="Idempotency-Key")
    return key


def request_hash(body: BaseModel, scope: str, *, exclude: set[str] | None = None) -> str:
    """Fingerprint of a submission, to tell a retry from a different submission reusing an idempotency key."""
    dumped = body.model_dump(mode="json", exclude=exclude)
    return hashlib.sha256(scope.encode() + orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS)).hexdigest()
