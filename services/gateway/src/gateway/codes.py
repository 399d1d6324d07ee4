"""One-time login codes: generation, keyed hashing and the pluggable sender that delivers them."""

from __future__ import annotations

import logging
import secrets
from typing import Protocol

from shouwang_shared.logs import log_fields
from shouwang_shared.pii import mask_phone

log = logging.getLogger(__name__)


def normalize_phone(phone: str) -> str:
    """The 11-digit mainland mobile number without a +86 / 86 prefix."""
    digits = phone.strip().removeprefix("+")
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(1_000_000):06d}"


class CodeSender(Protocol):
    """Delivers a login code to a phone (SMS gateway in production)."""

    async def send(self, phone: str, code: str) -> None: ...


class DevCodeSender:
    """Development sender: writes the code to the log and keeps the latest per phone for a dev-only endpoint."""

    def __init__(self) -> None:
        self.latest: dict[str, str] = {}

    async def send(self, phone: str, code: str) -> None:
        """Log the code and remember it."""
        self.latest[phone] = code
        log.info("dev login code for %s: %s", mask_phone(phone), code, extra=log_fields(phone=mask_phone(phone), code=code))


class NoopCodeSender:
    """Refuses to pretend: without a configured SMS sender no code leaves the gateway (logged as a warning)."""

    async def send(self, phone: str, code: str) -> None:
        """Warn that no sender is configured."""
        log.warning("no SMS sender configured; login code for %s not delivered", mask_phone(phone))
