"""The digital volunteer card on the running platform: a volunteer fetches it through the gateway, a verifier caches
the issuer keys and revocation list once and then checks cards with no network, suspension revokes the card for
the next refresh, and tampered, foreign-key and expired cards are refused."""

from __future__ import annotations

import socket
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

import base45
import cbor2
import pytest

from shouwang_shared.contracts.card import (
    PREFIX,
    CardClaims,
    CardStatus,
    CardVerifier,
    encode_card,
    generate_private_key_pem,
    key_id,
    load_private_key,
)

from tests.e2e.journey import bearer, build_county, expect, register_volunteer


@contextmanager
def no_network():
    """Any attempt to open a connection fails while inside (so a check that works here works offline)."""
    real = socket.socket.connect

    def refuse(*_args, **_kwargs):
        raise OSError("offline")

    socket.socket.connect = refuse
    try:
        yield
    finally:
        socket.socket.connect = real


def parts(qr: str) -> list:
    """The four parts of a card's COSE_Sign1."""
    return list(cbor2.loads(base45.b45decode(qr[len(PREFIX):])).value)


def assemble(protected: bytes, payload: bytes, signature: bytes) -> str:
    return PREFIX + base45.b45encode(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))).decode()


@pytest.fixture(scope="module")
async def holder(platform):
    """A county and an active volunteer logged in on their phone."""
    async with platform.client() as client:
        county = await build_county(platform, client)
        volunteer = await register_volunteer(client, county)
    return county, volunteer


async def test_a_card_fetched_through_the_gateway_verifies_offline_and_is_revoked_with_a_suspension(platform, holder):
    county, volunteer = holder
    async with platform.client() as client:
        card = expect(await client.get("/api/v1/volunteers/me/card", headers=bearer(volunteer.token)), 200)
        assert card["station"] == county.station["name"] and card["station_id"] == county.station["id"]
        assert "<svg" in card["qr_svg"] and card["qr_text"].startswith("SW1:")
        keys = expect(await client.get("/api/v1/cards/keys"), 200)  # anonymous: an officer's app caches these once
        revocations = await client.get("/api/v1/cards/revocations")
        assert revocations.status_code == 200 and "etag" in revocations.headers
        assert (await client.get("/api/v1/cards")).status_code == 401, "only the two documents are public"

    verifier = CardVerifier.from_documents(keys, revocations.json())
    with no_network():
        result = verifier.verify(card["qr_text"])
        with pytest.raises(OSError):  # the guard holds: nothing could have been fetched during the check
            socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert result.status is CardStatus.VALID, result
    assert (result.claims.serial, result.claims.number_text, result.claims.name, result.claims.star) == (
        card["serial"], card["volunteer_number"], card["name"], card["star"])

    async with platform.client() as client:
        staff = bearer(county.station_admin_token)
        expect(await client.post(f"/api/v1/volunteers/{volunteer.volunteer_id}/suspend", headers=staff, json={"reason": "冒用他人身份"}), 200)
        refreshed = await client.get("/api/v1/cards/revocations", headers={"If-None-Match": revocations.headers["etag"]})
        assert refreshed.status_code == 200 and card["serial"] in refreshed.json()["serials"]
        refused = await client.get("/api/v1/volunteers/me/card", headers=bearer(volunteer.token))
        assert refused.status_code in (401, 403, 409), refused.text  # a suspended volunteer gets no new card
    with no_network():
        assert verifier.verify(card["qr_text"]).status is CardStatus.VALID, "until the list is refreshed, the cached one holds"
        verifier.load_revocations(refreshed.json())
        assert verifier.verify(card["qr_text"]).status is CardStatus.REVOKED


async def test_tampered_foreign_and_expired_cards_are_refused(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        volunteer = await register_volunteer(client, county)
        card = expect(await client.get("/api/v1/volunteers/me/card", headers=bearer(volunteer.token)), 200)
        verifier = CardVerifier.from_documents(expect(await client.get("/api/v1/cards/keys"), 200))
    protected, _, payload, signature = parts(card["qr_text"])

    claims = cbor2.loads(payload)
    claims[-70001] = {**claims[-70001], "sr": 5, "nm": "王*"}  # a claim changed, the signature kept
    changed_claim = assemble(protected, cbor2.dumps(claims), signature)
    changed_signature = assemble(protected, payload, bytes([signature[0] ^ 1]) + signature[1:])
    forger = load_private_key(generate_private_key_pem())
    resigned_under_issuer_kid = assemble(protected, payload, forger.sign(cbor2.dumps(["Signature1", protected, b"", payload])))
    issued = verifier.verify(card["qr_text"]).claims
    own_key_card = encode_card(CardClaims(**{**issued.__dict__, "serial": str(uuid.uuid4())}), forger)

    with no_network():
        assert verifier.verify(changed_claim).status is CardStatus.BAD_SIGNATURE
        assert verifier.verify(changed_signature).status is CardStatus.BAD_SIGNATURE
        assert verifier.verify(resigned_under_issuer_kid).status is CardStatus.BAD_SIGNATURE
        foreign = verifier.verify(own_key_card)
        assert foreign.status is CardStatus.UNKNOWN_KEY and foreign.kid == key_id(forger.public_key())
        assert verifier.verify(card["qr_text"][:-3]).status in (CardStatus.MALFORMED, CardStatus.BAD_SIGNATURE)
        expires = datetime.fromisoformat(card["expires_at"])
        assert verifier.verify(card["qr_text"], now=expires - timedelta(seconds=1)).status is CardStatus.VALID
        assert verifier.verify(card["qr_text"], now=expires).status is CardStatus.EXPIRED
        assert verifier.verify(card["qr_text"], now=expires + timedelta(days=1)).status is CardStatus.EXPIRED
