"""The digital volunteer card: who gets one, issuing it (signed, in the format of shouwang_shared.contracts.card),
revoking a volunteer's cards with their suspension or retirement, and the published keys and revocation list."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.contracts.card import CardClaims, encode_card, key_id, load_private_key, public_jwk
from shouwang_shared.errors import Conflict, Forbidden, NotFound, ServiceUnavailable

from registry.config import RegistrySettings
from registry.qr import qr_image

Sessions = async_sessionmaker[AsyncSession]

STATUS_NAMES = {"applicant": "待审核", "active": "在册", "suspended": "已暂停", "retired": "已退出"}
# Statuses that end a volunteer's cards at once (in the transaction that sets them).
REVOKING_STATUSES = frozenset({"suspended", "retired"})


@dataclass(frozen=True)
class CardIssuer:
    """The card signing key, the public keys published for verifiers (current first), and a card's validity."""

    key: Ed25519PrivateKey
    published: tuple[Ed25519PublicKey, ...]
    validity: timedelta

    @property
    def kid(self) -> str:
        """The id of the current signing key."""
        return key_id(self.key.public_key())

    def keys_document(self) -> dict:
        """The issuer public keys as a JWK set, the current key first and named."""
        return {"issuer": "shouwang", "active_kid": self.kid, "keys": [public_jwk(k) for k in self.published]}


def card_issuer(settings: RegistrySettings) -> CardIssuer | None:
    """The issuer of this process's settings, or None when no CARD_SIGNING_KEY is set (ValueError on a bad key)."""
    if not settings.card_signing_key:
        return None
    key = load_private_key(settings.card_signing_key)
    retired = []
    for pem in json.loads(settings.card_retired_public_keys or "[]"):
        public = serialization.load_pem_public_key(pem.encode())
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError("CARD_RETIRED_PUBLIC_KEYS holds a key that is not Ed25519")
        retired.append(public)
    current = key.public_key()
    others = [k for k in retired if key_id(k) != key_id(current)]
    return CardIssuer(key=key, published=(current, *others), validity=timedelta(hours=settings.card_validity_hours))


def require_issuer(issuer: CardIssuer | None) -> CardIssuer:
    """The issuer, or 503 when this deployment has no card signing key."""
    if issuer is None:
        raise ServiceUnavailable("本部署未配置志愿者证签名密钥（CARD_SIGNING_KEY）", field="card", code="card_not_configured")
    return issuer


_HOLDER = (
    "SELECT v.id, v.volunteer_number, v.display_name, v.status, v.status_reason, v.org_unit_id, v.teams, v.star, v.version, "
    "o.name AS station FROM volunteers v JOIN org_units o ON o.id = v.org_unit_id WHERE v.id = CAST(:id AS uuid)"
)
# A card still good for more than half its validity, of the volunteer as they stand now, signed by the current key
# and not revoked, is handed out again rather than a new one signed.
_REUSABLE = (
    "SELECT c.serial, c.issued_at, c.expires_at, c.qr_text FROM volunteer_cards c "
    "WHERE c.volunteer_id = CAST(:id AS uuid) AND c.volunteer_version = :version AND c.kid = :kid AND c.expires_at > :fresh_until "
    "AND NOT EXISTS (SELECT 1 FROM card_revocations r WHERE r.serial = c.serial) ORDER BY c.expires_at DESC LIMIT 1"
)


async def own_card(*, sessions: Sessions, issuer: CardIssuer | None, principal: Principal, now: datetime | None = None) -> dict:
    """The calling volunteer's card (reused while fresh, else newly signed); only an active volunteer gets one."""
    issuer = require_issuer(issuer)
    if principal.role != Role.VOLUNTEER or not principal.volunteer_id:
        raise Forbidden("仅限志愿者本人领取志愿者证", field="role", code="role_forbidden")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    async with sessions() as session, session.begin():
        holder = (await session.execute(text(_HOLDER), {"id": principal.volunteer_id})).mappings().first()
        if holder is None:
            raise NotFound("志愿者不存在", field="volunteer_id")
        if holder["status"] != "active":
            reason = f"：{holder['status_reason']}" if holder["status_reason"] else ""
            raise Conflict(f"志愿者状态为「{STATUS_NAMES[holder['status']]}」{reason}，不能领取志愿者证",
                           field="status", code="volunteer_not_active")
        card = (await session.execute(text(_REUSABLE), {
            "id": principal.volunteer_id, "version": holder["version"], "kid": issuer.kid, "fresh_until": now + issuer.validity / 2,
        })).mappings().first()
        if card is None:
            card = await _issue(session, issuer, holder, now)
    return card_view(holder, card)


async def _issue(session: AsyncSession, issuer: CardIssuer, holder: Any, now: datetime) -> dict:
    """Sign a new card for `holder` and store it."""
    claims = CardClaims(
        serial=str(uuid.uuid4()), number=holder["volunteer_number"], name=holder["display_name"],
        station_id=str(holder["org_unit_id"]), station=holder["station"], teams=tuple(holder["teams"]), star=holder["star"],
        issued_at=now, expires_at=now + issuer.validity,
    )
    qr_text = encode_card(claims, issuer.key)
    await session.execute(text(
        "INSERT INTO volunteer_cards (serial, volunteer_id, volunteer_version, kid, issued_at, expires_at, qr_text) "
        "VALUES (CAST(:serial AS uuid), :vid, :version, :kid, :issued_at, :expires_at, :qr_text)"
    ), {"serial": claims.serial, "vid": holder["id"], "version": holder["version"], "kid": issuer.kid,
        "issued_at": claims.issued_at, "expires_at": claims.expires_at, "qr_text": qr_text})
    return {"serial": claims.serial, "issued_at": claims.issued_at, "expires_at": claims.expires_at, "qr_text": qr_text}


def card_view(holder: Any, card: Any) -> dict:
    """A card as the phone shows it: what the QR says, the QR text and its SVG (the photo would sit beside it)."""
    svg, _ = qr_image(card["qr_text"], fmt="svg")
    return {
        "serial": str(card["serial"]), "volunteer_number": f"{holder['volunteer_number']:08d}", "name": holder["display_name"],
        "station_id": str(holder["org_unit_id"]), "station": holder["station"], "teams": list(holder["teams"]),
        "star": holder["star"], "issued_at": card["issued_at"], "expires_at": card["expires_at"], "photo_url": None,
        "qr_text": card["qr_text"], "qr_svg": svg.decode(),
    }


async def revoke_cards(session: AsyncSession, *, volunteer_id: str, reason: str) -> int:
    """Revoke every card of a volunteer still in its validity (in the caller's transaction); how many."""
    result = await session.execute(text(
        "INSERT INTO card_revocations (serial, volunteer_id, expires_at, reason) "
        "SELECT serial, volunteer_id, expires_at, :reason FROM volunteer_cards "
        "WHERE volunteer_id = CAST(:vid AS uuid) AND expires_at > now() ON CONFLICT (serial) DO NOTHING"
    ), {"vid": volunteer_id, "reason": reason})
    return result.rowcount


async def revocation_list(*, sessions: Sessions) -> dict:
    """Serials of revoked cards not yet expired (an expired card is refused anyway)."""
    async with sessions() as session:
        serials = [str(s) for s in (await session.execute(text(
            "SELECT serial FROM card_revocations WHERE expires_at > now() ORDER BY serial"
        ))).scalars()]
    return {"issuer": "shouwang", "as_of": datetime.now(UTC), "serials": serials}


def document_etag(document: dict) -> str:
    """A strong ETag of a published document's content."""
    body = json.dumps({k: v for k, v in document.items() if k != "as_of"}, sort_keys=True, default=str)
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
