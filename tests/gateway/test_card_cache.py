"""The gateway's card verifier cache (unit, registry faked at the edge): lists fetched once and refreshed by ETag when
stale, and the cached lists used when the registry cannot be reached."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from shouwang_shared.contracts.card import CardClaims, CardStatus, encode_card, generate_private_key_pem, load_private_key, public_jwk

from gateway.cards import KEYS_PATH, REVOCATIONS_PATH, TEAMS_PATH, CardVerifierCache
from gateway.upstream import UpstreamResponse, UpstreamUnavailable

KEY = load_private_key(generate_private_key_pem())


class FakeRegistry:
    """Answers the three registry routes the cache reads; records what it was asked; can be down."""

    def __init__(self) -> None:
        self.revoked: list[str] = []
        self.down = False
        self.asked: list[tuple[str, str]] = []

    def _answer(self, status: int, body: object = None, etag: str = "") -> UpstreamResponse:
        headers = CIMultiDictProxy(CIMultiDict({"etag": etag} if etag else {}))
        return UpstreamResponse(status, headers, (), orjson.dumps(body) if body is not None else b"")

    async def send(self, service: str, method: str, path: str, *, headers=None, timeout_s=None) -> UpstreamResponse:
        if self.down:
            raise UpstreamUnavailable(service, retry_after_s=1)
        etag = f'"{len(self.revoked)}"'
        self.asked.append((path, (headers or {}).get("if-none-match", "")))
        if path == KEYS_PATH:
            return self._answer(200, {"keys": [public_jwk(KEY.public_key())]})
        if (headers or {}).get("if-none-match") == etag:
            return self._answer(304, etag=etag)
        return self._answer(200, {"serials": self.revoked}, etag=etag)

    async def call_internal(self, service: str, method: str, path: str) -> UpstreamResponse:
        assert path == TEAMS_PATH
        return self._answer(200, [{"code": "voluntary_patrol", "name": "义务巡防队", "description": ""}])


def card() -> tuple[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    serial = str(uuid.uuid4())
    claims = CardClaims(serial=serial, number=7, name="李*", station_id=str(uuid.uuid4()), station="东门站", teams=("voluntary_patrol",),
                        star=2, issued_at=now, expires_at=now + timedelta(hours=24))
    return encode_card(claims, KEY), serial


async def test_lists_are_fetched_once_refreshed_by_etag_and_kept_when_the_registry_is_down():
    registry = FakeRegistry()
    cache = CardVerifierCache(registry, revocations_max_age_s=0)  # type: ignore[arg-type]
    qr, serial = card()

    first = await cache.check(qr)
    assert first.verification.status is CardStatus.VALID and first.online and cache.team_names == {"voluntary_patrol": "义务巡防队"}
    assert registry.asked == [(KEYS_PATH, ""), (REVOCATIONS_PATH, "")]

    await cache.check(qr)
    assert registry.asked[-1] == (REVOCATIONS_PATH, '"0"') and [p for p, _ in registry.asked].count(KEYS_PATH) == 1  # 304, keys kept

    registry.revoked.append(serial)
    revoked = await cache.check(qr)
    assert revoked.verification.status is CardStatus.REVOKED and revoked.online

    registry.down = True
    offline = await cache.check(qr)
    assert offline.verification.status is CardStatus.REVOKED and not offline.online and offline.revocations_age_s is not None


async def test_with_the_registry_down_from_the_start_no_card_is_taken_as_valid():
    registry = FakeRegistry()
    registry.down = True
    check = await CardVerifierCache(registry).check(card()[0])  # type: ignore[arg-type]
    assert check.verification.status is CardStatus.UNKNOWN_KEY and not check.online and check.revocations_age_s is None
