"""The volunteer card format (shouwang_shared.contracts.card), pure: what verifies, what is refused, and that no
input makes the verifier raise."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import base45
import cbor2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shouwang_shared.contracts.card import (
    PREFIX,
    CardClaims,
    CardStatus,
    CardVerifier,
    b45decode,
    encode_card,
    generate_private_key_pem,
    key_id,
    keys_from_jwks,
    load_private_key,
    public_jwk,
)

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
KEY = load_private_key(generate_private_key_pem())
OTHER_KEY = load_private_key(generate_private_key_pem())


def claims(**changes) -> CardClaims:
    """A day-long card issued at NOW."""
    values = dict(serial=str(uuid.uuid4()), number=1234, name="张*", station_id=str(uuid.uuid4()), station="城关镇东街社区站",
                  teams=("patrol", "first_aid"), star=3, issued_at=NOW, expires_at=NOW + timedelta(hours=24))
    values.update(changes)
    return CardClaims(**values)


def verifier(*keys, revoked=()) -> CardVerifier:
    return CardVerifier.from_documents({"keys": [public_jwk(k.public_key()) for k in keys or (KEY,)]}, {"serials": list(revoked)})


def test_a_card_verifies_offline_with_the_issuer_key_and_reads_back_its_claims():
    card = claims()
    qr = encode_card(card, KEY)
    assert qr.startswith(PREFIX) and len(qr) < 400
    assert set(qr[len(PREFIX):]) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")  # QR alphanumeric mode
    result = verifier().verify(qr, now=NOW + timedelta(hours=1))
    assert result.status is CardStatus.VALID and result.valid
    assert result.claims == card and result.kid == key_id(KEY.public_key())
    assert result.claims.number_text == "00001234"


def test_expired_not_yet_valid_revoked_and_unknown_key_are_told_apart():
    card = claims()
    qr = encode_card(card, KEY)
    assert verifier().verify(qr, now=card.expires_at).status is CardStatus.EXPIRED
    assert verifier().verify(qr, now=NOW - timedelta(hours=1)).status is CardStatus.NOT_YET_VALID
    assert verifier().verify(qr, now=NOW - timedelta(minutes=4)).status is CardStatus.VALID  # a verifier's clock a bit slow
    assert verifier(revoked=[card.serial]).verify(qr, now=NOW).status is CardStatus.REVOKED
    assert verifier(OTHER_KEY).verify(qr, now=NOW).status is CardStatus.UNKNOWN_KEY
    assert verifier(OTHER_KEY, KEY).verify(qr, now=NOW).status is CardStatus.VALID  # old and new keys during a rotation


def test_a_claim_changed_and_signed_again_with_another_key_under_the_issuers_kid_is_refused():
    """A forger copies the issuer's key id into a card signed with a key of their own: the signature does not hold."""
    genuine = base45.b45decode(encode_card(claims(), KEY)[len(PREFIX):])
    protected, _, payload, _ = cbor2.loads(genuine).value
    changed = cbor2.loads(payload)
    changed[-70001] = {**changed[-70001], "sr": 5}
    payload = cbor2.dumps(changed)
    signature = OTHER_KEY.sign(cbor2.dumps(["Signature1", protected, b"", payload]))
    forged = PREFIX + base45.b45encode(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))).decode()
    assert verifier().verify(forged, now=NOW).status is CardStatus.BAD_SIGNATURE


def test_a_published_key_whose_kid_does_not_match_is_refused():
    jwk = public_jwk(KEY.public_key()) | {"kid": key_id(OTHER_KEY.public_key())}
    with pytest.raises(ValueError, match="does not match"):
        keys_from_jwks({"keys": [jwk]})


@pytest.mark.parametrize("garbage", [None, 42, b"SW1:", "", "SW1:", "SW1:::", "HC1:6BFOXN", "SW1:" + "0" * 5000, "SW1:0A0"])
def test_garbage_is_malformed(garbage):
    assert verifier().verify(garbage, now=NOW).status is CardStatus.MALFORMED


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=600), st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", max_size=600).map(PREFIX.__add__)))
def test_no_text_makes_the_verifier_raise(text):
    assert not verifier().verify(text, now=NOW).valid


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_no_bytes_behind_the_prefix_make_the_verifier_raise(raw):
    assert not verifier().verify(PREFIX + base45.b45encode(raw).decode(), now=NOW).valid


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.binary(max_size=20) | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.integers(-70002, 8) | st.text(max_size=3), inner, max_size=4),
                    max_leaves=12))
def test_a_signed_payload_of_any_shape_is_never_valid_and_never_raises(payload_value):
    """Even a genuine signature over a payload that is not a card's claims is refused as malformed, not a crash."""
    kid = base64.urlsafe_b64decode(key_id(KEY.public_key()) + "=")
    protected = cbor2.dumps({1: -8, 4: kid})
    payload = cbor2.dumps(payload_value)
    signature = KEY.sign(cbor2.dumps(["Signature1", protected, b"", payload]))
    qr = PREFIX + base45.b45encode(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))).decode()
    assert verifier().verify(qr, now=NOW).status is CardStatus.MALFORMED


QR = encode_card(claims(), KEY)
RAW = base45.b45decode(QR[len(PREFIX):])


@settings(max_examples=500, deadline=None)
@given(st.integers(0, len(RAW) - 1), st.integers(1, 255))
def test_any_byte_flip_in_the_token_is_refused(position, flip):
    changed = bytearray(RAW)
    changed[position] ^= flip
    result = verifier().verify(PREFIX + base45.b45encode(bytes(changed)).decode(), now=NOW)
    assert result.status in {CardStatus.MALFORMED, CardStatus.BAD_SIGNATURE, CardStatus.UNKNOWN_KEY}


@settings(max_examples=500, deadline=None)
@given(st.integers(0, len(QR) - 1), st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:abc\n"))
def test_any_character_changed_in_the_qr_text_is_refused(position, character):
    assume(QR[position] != character)
    changed = QR[:position] + character + QR[position + 1:]
    assert not verifier().verify(changed, now=NOW).valid


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300).map(lambda raw: base45.b45encode(raw).decode()),
                 st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:a\n", max_size=40), st.text(max_size=20)))
def test_the_fast_base45_decoder_agrees_with_the_library(text):
    assume(not text.endswith("\n"))  # the library forgives a trailing line end; the card strips it before decoding
    try:
        expected = base45.b45decode(text)
    except ValueError:
        expected = None
    try:
        got = b45decode(text)
    except ValueError:
        got = None
    assert got == expected
