"""Informant pseudonyms are keyed by PSEUDONYM_KEY alone: a leaked receipt key does not let anyone recompute them."""

from __future__ import annotations

import base64

import pytest

from intel.config import IntelSettings
from intel.context import IntelContext


def _keys(receipt: bytes, pseudonym: bytes):
    settings = IntelSettings(receipt_key=base64.b64encode(receipt * 32).decode(), pseudonym_key=base64.b64encode(pseudonym * 32).decode(),
                             pii_key=base64.b64encode(b"d" * 32).decode())
    return IntelContext(settings).keys


def test_pseudonyms_follow_the_pseudonym_key_and_not_the_receipt_key():
    volunteer, claim, case = "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "9f2c4e1a7b3d5f60a1b2c3d4e5f60718", "0193a2b4-0000-7000-8000-000000000001"

    def names(keys):
        return (keys.analyst_pseudonym(volunteer_id=volunteer, claim_ref=None), keys.analyst_pseudonym(volunteer_id=None, claim_ref=claim),
                keys.liaison_pseudonym(case, volunteer_id=volunteer, claim_ref=None))

    base = _keys(b"r", b"p")
    assert names(_keys(b"R", b"p")) == names(base), "changing the receipt key leaves pseudonyms as they were"
    assert all(a != b for a, b in zip(names(_keys(b"r", b"P")), names(base), strict=True)), "the pseudonym key decides them"
    assert base.claim_ref("RABCDEFGHJK2") != _keys(b"R", b"p").claim_ref("RABCDEFGHJK2"), "receipts stay under RECEIPT_KEY"


def test_intel_refuses_to_start_without_a_pseudonym_key():
    settings = IntelSettings(receipt_key=base64.b64encode(b"r" * 32).decode(), pii_key=base64.b64encode(b"d" * 32).decode(), pseudonym_key="")
    with pytest.raises(ValueError, match="PSEUDONYM_KEY"):
        IntelContext(settings)
