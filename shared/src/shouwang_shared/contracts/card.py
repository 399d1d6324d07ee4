"""The digital volunteer card: a signed token a QR code carries, verifiable offline (pure: no I/O).

The format is a public contract, so an outside verifier (a police officer's phone app) can be built from this module
alone or from its description in docs/api.md:

    QR text  = "SW1:" + Base45( COSE_Sign1 )                          (RFC 9285; QR alphanumeric mode, like the EU DCC "HC1:")
    COSE_Sign1 = tag 18 [ protected, {}, payload, signature ]         (RFC 9052)
      protected = bstr .cbor { 1 (alg): -8 (EdDSA), 4 (kid): bstr }   the key id is in the signed header
      payload   = bstr .cbor CWT claims (RFC 8392):
        1 iss "shouwang", 6 iat, 4 exp (seconds since the epoch), 7 cti = the card serial (16-byte UUID),
        -70001 = { "no": volunteer number, "nm": masked name, "sid": station id (16-byte UUID), "st": station name,
                   "tm": [team codes], "sr": star 1-5 }
      signature = Ed25519 over Sig_structure ["Signature1", protected, h'', payload]

The key id is the first 8 bytes of SHA-256 over the raw 32-byte public key (`key_id`), so it follows from the key
and needs no setting of its own. Issuer public keys are published as OKP JSON Web Keys; the revocation list as
card serials. `CardVerifier.verify` returns a `Verification` for any input and never raises. Who gets a card is
the registry's rule, not this module's.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import base45
import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "SW1:"
ISSUER = "shouwang"
COSE_SIGN1_TAG = 18
ALG_EDDSA = -8
HEADER_ALG, HEADER_KID = 1, 4
CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_CTI = 1, 4, 6, 7
CLAIM_CARD = -70001  # private-use CWT claim (RFC 8392 §4: negative integers below -65536)
MAX_QR_CHARS = 1500  # a card is about 300 characters; anything much longer is not one
CLOCK_SKEW_S = 300  # a card issued up to five minutes "in the future" (a verifier's slow clock) still verifies


class CardStatus(StrEnum):
    """The outcome of verifying a card."""

    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class CardClaims:
    """What a card says about its holder (no ID number, no phone, no photo)."""

    serial: str
    number: int
    name: str
    station_id: str
    station: str
    teams: tuple[str, ...]
    star: int
    issued_at: datetime
    expires_at: datetime
    issuer: str = ISSUER

    @property
    def number_text(self) -> str:
        """The volunteer number as printed on a card (eight digits)."""
        return f"{self.number:08d}"


@dataclass(frozen=True)
class Verification:
    """The result of checking one QR text: the status, and the claims once the signature held."""

    status: CardStatus
    claims: CardClaims | None = None
    kid: str | None = None
    detail: str = ""

    @property
    def valid(self) -> bool:
        """True only for a genuine, current, unrevoked card."""
        return self.status is CardStatus.VALID


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The key id of a public key: base64url of the first 8 bytes of SHA-256 over its raw bytes."""
    return _b64url(hashlib.sha256(_raw_public(key)).digest()[:8])


def load_private_key(pem: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (ValueError when it is not one)."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the card signing key must be an Ed25519 private key")
    return key


def generate_private_key_pem() -> str:
    """A fresh Ed25519 private key as PKCS#8 PEM (what CARD_SIGNING_KEY holds)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """A public key as an OKP JSON Web Key (RFC 8037) with its key id."""
    return {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key_id(key), "x": _b64url(_raw_public(key))}


def keys_from_jwks(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id from a `{"keys": [JWK, ...]}` document (entries that are not Ed25519 keys are skipped;
    a kid that does not match its key is refused with ValueError)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in document.get("keys", []):
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        key = Ed25519PublicKey.from_public_bytes(_unb64url(jwk["x"]))
        if jwk.get("kid", key_id(key)) != key_id(key):
            raise ValueError(f"key id {jwk.get('kid')!r} does not match its key")
        keys[key_id(key)] = key
    return keys


_BASE45 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BASE45_VALUES = bytes.maketrans(_BASE45, bytes(range(45)))


def b45decode(text: str) -> bytes:
    """Base45 (RFC 9285) text to bytes; ValueError when it is not Base45. The same result as `base45.b45decode`
    (tested), but with the character look-up and packing done in C: a verifier decodes every card it checks."""
    raw = text.encode("ascii")  # UnicodeEncodeError is a ValueError
    if raw.translate(None, _BASE45):
        raise ValueError("a character outside the Base45 alphabet")
    values = raw.translate(_BASE45_VALUES)
    triples, rest = divmod(len(values), 3)
    if rest == 1:
        raise ValueError("a Base45 text of a length no bytes encode to")
    try:  # not strict: a last pair makes the first slice one longer; the pair is packed on its own
        out = struct.pack(f">{triples}H", *[a + b * 45 + c * 2025 for a, b, c in zip(values[0::3], values[1::3], values[2::3], strict=False)])
        if rest:
            out += struct.pack(">B", values[-2] + values[-1] * 45)
    except struct.error as exc:
        raise ValueError("a Base45 group beyond its range") from exc
    return out


def _cbor_uuid(text: str) -> bytes:
    return uuid.UUID(text).bytes


def encode_card(claims: CardClaims, key: Ed25519PrivateKey) -> str:
    """Sign `claims` with `key` and return the QR text (`SW1:` + Base45 of the COSE_Sign1)."""
    kid = _unb64url(key_id(key.public_key()))
    protected = cbor2.dumps({HEADER_ALG: ALG_EDDSA, HEADER_KID: kid})
    payload = cbor2.dumps({
        CLAIM_ISS: claims.issuer,
        CLAIM_IAT: int(claims.issued_at.timestamp()),
        CLAIM_EXP: int(claims.expires_at.timestamp()),
        CLAIM_CTI: _cbor_uuid(claims.serial),
        CLAIM_CARD: {"no": claims.number, "nm": claims.name, "sid": _cbor_uuid(claims.station_id), "st": claims.station,
                     "tm": list(claims.teams), "sr": claims.star},
    })
    signature = key.sign(_to_be_signed(protected, payload))
    token = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    return PREFIX + base45.b45encode(token).decode()


def _to_be_signed(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


class _Malformed(Exception):
    """The input is not a card of this format."""


# What decoding arbitrary text and CBOR can raise; each means "not a card".
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, OSError, AttributeError, RecursionError,
                  cbor2.CBORDecodeError, _Malformed)


@dataclass(frozen=True)
class _Envelope:
    protected: bytes
    payload: bytes
    signature: bytes
    kid: str


def _open_envelope(text: Any) -> _Envelope:
    """The parts of a COSE_Sign1 in QR text; raises one of _DECODE_ERRORS when it is not exactly one."""
    if not isinstance(text, str) or len(text) > MAX_QR_CHARS:
        raise _Malformed("not text of a card's length")
    text = text.strip("\r\n\t")  # a scanner's line end; not spaces, which Base45 uses
    if not text.startswith(PREFIX):
        raise _Malformed(f"does not start with {PREFIX}")
    raw = b45decode(text[len(PREFIX):])
    tagged = cbor2.loads(raw)
    if not isinstance(tagged, cbor2.CBORTag) or tagged.tag != COSE_SIGN1_TAG:
        raise _Malformed("not a COSE_Sign1")
    parts = tagged.value
    if not isinstance(parts, (list, tuple)) or len(parts) != 4:
        raise _Malformed("a COSE_Sign1 has four parts")
    protected, unprotected, payload, signature = parts
    if not (isinstance(protected, bytes) and isinstance(payload, bytes) and isinstance(signature, bytes)):
        raise _Malformed("protected header, payload and signature are byte strings")
    if not isinstance(unprotected, Mapping) or unprotected:
        raise _Malformed("the unprotected header is empty")
    if cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature])) != raw:
        raise _Malformed("not in the one encoding a card has")  # every byte of the QR is accounted for
    header = cbor2.loads(protected)
    if not isinstance(header, Mapping) or header.get(HEADER_ALG) != ALG_EDDSA or not isinstance(header.get(HEADER_KID), bytes):
        raise _Malformed("the protected header names EdDSA and a key id")
    return _Envelope(protected, payload, signature, _b64url(header[HEADER_KID]))


def _read_claims(payload: bytes) -> CardClaims:
    """The claims of a signed payload; raises one of _DECODE_ERRORS when they are not a card's."""
    claims = cbor2.loads(payload)
    card = claims[CLAIM_CARD]
    teams = card["tm"]
    values = (claims[CLAIM_ISS], claims[CLAIM_IAT], claims[CLAIM_EXP], card["no"], card["nm"], card["st"], card["sr"])
    if not (isinstance(values[0], str) and all(isinstance(v, int) and not isinstance(v, bool) for v in values[1:4])
            and isinstance(values[4], str) and isinstance(values[5], str) and isinstance(values[6], int)
            and isinstance(teams, (list, tuple)) and all(isinstance(t, str) for t in teams)):
        raise _Malformed("claims of the wrong type")
    return CardClaims(
        serial=str(uuid.UUID(bytes=claims[CLAIM_CTI])), number=card["no"], name=card["nm"],
        station_id=str(uuid.UUID(bytes=card["sid"])), station=card["st"], teams=tuple(teams), star=card["sr"],
        issued_at=datetime.fromtimestamp(claims[CLAIM_IAT], UTC), expires_at=datetime.fromtimestamp(claims[CLAIM_EXP], UTC),
        issuer=claims[CLAIM_ISS],
    )


class CardVerifier:
    """Checks cards offline against cached issuer public keys and a cached revocation list."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] | None = None, revoked: Iterable[str] = ()) -> None:
        self.keys: dict[str, Ed25519PublicKey] = dict(keys or {})
        self.revoked: frozenset[str] = frozenset(revoked)

    @classmethod
    def from_documents(cls, keys: Mapping[str, Any], revocations: Mapping[str, Any] | None = None) -> CardVerifier:
        """A verifier from the two published documents (`GET /cards/keys`, `GET /cards/revocations`)."""
        verifier = cls(keys_from_jwks(keys))
        if revocations is not None:
            verifier.load_revocations(revocations)
        return verifier

    def load_keys(self, document: Mapping[str, Any]) -> None:
        """Replace the cached issuer keys with those of a `{"keys": [...]}` document."""
        self.keys = keys_from_jwks(document)

    def load_revocations(self, document: Mapping[str, Any]) -> None:
        """Replace the cached revocation list with the serials of a `{"serials": [...]}` document."""
        self.revoked = frozenset(str(s) for s in document.get("serials", []))

    def verify(self, text: Any, *, now: datetime | None = None) -> Verification:
        """Check one QR text: format, key, signature, revocation, validity. Never raises."""
        try:
            envelope = _open_envelope(text)
        except _DECODE_ERRORS as exc:
            return Verification(CardStatus.MALFORMED, detail=str(exc) or type(exc).__name__)
        key = self.keys.get(envelope.kid)
        if key is None:
            return Verification(CardStatus.UNKNOWN_KEY, kid=envelope.kid, detail="no issuer key with this id")
        try:
            key.verify(envelope.signature, _to_be_signed(envelope.protected, envelope.payload))
        except InvalidSignature:
            return Verification(CardStatus.BAD_SIGNATURE, kid=envelope.kid, detail="the signature does not hold")
        try:
            claims = _read_claims(envelope.payload)
        except _DECODE_ERRORS as exc:
            return Verification(CardStatus.MALFORMED, kid=envelope.kid, detail=f"signed but not a card: {exc}")
        return self._judge(claims, envelope.kid, now or datetime.now(UTC))

    def _judge(self, claims: CardClaims, kid: str, now: datetime) -> Verification:
        """The status of a genuine card at `now`."""
        if claims.issuer != ISSUER:
            return Verification(CardStatus.MALFORMED, claims, kid, f"issuer {claims.issuer!r}")
        if claims.serial in self.revoked:
            return Verification(CardStatus.REVOKED, claims, kid, "the card was revoked")
        if now >= claims.expires_at:
            return Verification(CardStatus.EXPIRED, claims, kid, "the card has expired")
        if (claims.issued_at - now).total_seconds() > CLOCK_SKEW_S:
            return Verification(CardStatus.NOT_YET_VALID, claims, kid, "the card is not valid yet")
        return Verification(CardStatus.VALID, claims, kid)
