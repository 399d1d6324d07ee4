"""Checking volunteer cards at the gateway (`/verify`): the card contract's verifier with the registry's published
keys and revocation list cached, refreshed when stale, and used as they are when the registry cannot be reached."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from shouwang_shared.contracts.card import CardVerifier, Verification
from shouwang_shared.errors import AppError

from gateway.upstream import Upstreams

KEYS_PATH = "/v1/cards/keys"
REVOCATIONS_PATH = "/v1/cards/revocations"
TEAMS_PATH = "/v1/teams"  # the teams' Chinese names, for showing a card's team codes


@dataclass(frozen=True)
class CardCheck:
    """A verification and how current the lists behind it were (`online`: refreshed within their age limits)."""

    verification: Verification
    online: bool
    revocations_age_s: float | None


class CardVerifierCache:
    """A `CardVerifier` whose keys and revocation list come from the registry's public routes, kept for
    `keys_max_age_s` and `revocations_max_age_s`, fetched again with If-None-Match when older."""

    def __init__(self, upstreams: Upstreams, *, keys_max_age_s: float = 3600.0, revocations_max_age_s: float = 30.0) -> None:
        self.upstreams = upstreams
        self.verifier = CardVerifier()
        self.keys_max_age_s = keys_max_age_s
        self.revocations_max_age_s = revocations_max_age_s
        self._keys_at: float | None = None
        self._revocations_at: float | None = None
        self._revocations_etag = ""
        self._lock = asyncio.Lock()
        self.team_names: dict[str, str] = {}

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch whichever list is stale (both when `force`); False when the registry could not be reached."""
        async with self._lock:
            now = time.monotonic()
            try:
                if force or self._keys_at is None or now - self._keys_at > self.keys_max_age_s:
                    response = await self.upstreams.send("registry", "GET", KEYS_PATH, timeout_s=2.0)
                    if response.status_code != 200:
                        return False
                    self.verifier.load_keys(response.json())
                    self._keys_at = now
                    teams = await self.upstreams.call_internal("registry", "GET", TEAMS_PATH)
                    if teams.status_code == 200:
                        self.team_names = {t["code"]: t["name"] for t in teams.json()}
                if force or self._revocations_at is None or now - self._revocations_at > self.revocations_max_age_s:
                    headers = {"if-none-match": self._revocations_etag} if self._revocations_etag and not force else {}
                    response = await self.upstreams.send("registry", "GET", REVOCATIONS_PATH, headers=headers, timeout_s=2.0)
                    if response.status_code == 200:
                        self.verifier.load_revocations(response.json())
                        self._revocations_etag = response.headers.get("etag", "")
                    elif response.status_code != 304:
                        return False
                    self._revocations_at = now
            except AppError:  # the registry is down or its circuit open: keep what is cached
                return False
            return True

    async def check(self, text: str) -> CardCheck:
        """Verify one QR text, refreshing stale lists first; with the registry unreachable, against the cached ones."""
        online = await self.refresh()
        age = None if self._revocations_at is None else time.monotonic() - self._revocations_at
        return CardCheck(self.verifier.verify(text), online=online, revocations_age_s=age)
