"""Signed QR invite tokens: `<invite id>.<HMAC-SHA256 signature>`, checked without a database hit. Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid


class BadInviteToken(ValueError):
    """The token is malformed or its signature is wrong."""


def _signature(key: bytes, invite_id: str) -> str:
    digest = hmac.new(key, f"invite:{invite_id}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_invite(key: bytes, invite_id: str) -> str:
    """The token printed in the QR code for `invite_id`."""
    return f"{invite_id}.{_signature(key, invite_id)}"


def open_invite(key: bytes, token: str) -> str:
    """The invite id inside a genuine token; raises BadInviteToken otherwise."""
    invite_id, _, signature = (token or "").strip().partition(".")
    try:
        uuid.UUID(invite_id)
    except ValueError as exc:
        raise BadInviteToken("邀请码格式错误") from exc
    if not hmac.compare_digest(signature, _signature(key, invite_id)):
        raise BadInviteToken("邀请码无效或已被篡改")
    return invite_id


def invite_key(secret: str, fallback: str) -> bytes:
    """Key bytes for invite signatures from the configured secret (or one derived from another secret)."""
    return hashlib.sha256(f"invite-key:{secret or fallback}".encode()).digest()
