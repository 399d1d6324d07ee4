"""Pure pieces of the shared library: envelope, PII cipher and masks, tokens, topic catalog, migrations split."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.exceptions import InvalidTag

from shouwang_shared.auth import Principal, Role, TokenSigner, TokenVerifier, generate_keypair
from shouwang_shared.envelope import Envelope, new_event
from shouwang_shared.errors import NotFound, Unauthorized, id_or_404
from shouwang_shared.pii import PiiCipher, mask_name, mask_phone
from shouwang_shared.topics import CATALOG, CONSUMER_GROUPS, dead_letter_topic


def test_envelope_round_trips_chinese_text_and_ignores_unknown_fields():
    ev = new_event(source="/services/intel", type="shouwang.intel.tip_submitted.v1", subject="t-1", data={"text": "发现可疑人员"})
    raw = ev.to_bytes()
    back = Envelope.from_bytes(raw[:-1] + b',"futurefield":1}')
    assert back == ev
    assert back.data["text"] == "发现可疑人员"
    assert back.specversion == "1.0" and back.id and back.time.tzinfo is not None


def test_envelope_rejects_malformed_input():
    with pytest.raises(ValueError):
        Envelope.from_bytes(b"{not json")
    with pytest.raises(ValueError):
        Envelope.from_bytes(b'{"id": "x"}')


def test_causation_and_correlation_follow_the_causing_event():
    cause = new_event(source="/a", type="t", subject="s", data={}, correlation_id="corr-1")
    effect = new_event(source="/b", type="t2", subject="s", data={}, caused_by=cause)
    assert effect.correlationid == "corr-1" and effect.causationid == cause.id


def test_pii_cipher_encrypts_with_context_and_indexes_deterministically():
    cipher = PiiCipher("a-secret", "another-secret")
    blob = cipher.encrypt("330102199001011234", context="national_id")
    assert b"330102199001011234" not in blob
    assert cipher.decrypt(blob, context="national_id") == "330102199001011234"
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, context="phone")
    assert cipher.encrypt("x") != cipher.encrypt("x")  # random nonce
    assert cipher.blind_index("33010219900101123x", context="id") == cipher.blind_index(" 33010219900101123X", context="id")
    assert cipher.blind_index("1", context="id") != PiiCipher("a-secret", "other").blind_index("1", context="id")


def test_the_blind_index_is_hmac_sha256_of_context_and_normalised_value_so_stored_indexes_keep_matching():
    key = base64.b64encode(b"i" * 32).decode()
    cipher = PiiCipher(base64.b64encode(b"k" * 32).decode(), key)
    expected = hmac.new(b"i" * 32, b"national_id:33010219900101123X", hashlib.sha256).hexdigest()
    assert cipher.blind_index(" 33010219900101123x ", context="national_id") == expected
    assert cipher.blind_index("13812345678", context="phone") == hmac.new(b"i" * 32, b"phone:13812345678", hashlib.sha256).hexdigest()


def test_masks_hide_the_middle():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三丰") == "张**"


def test_tokens_verify_rotate_expire_and_reject_forgeries():
    old_private, old_public = generate_keypair()
    new_private, new_public = generate_keypair()
    verifier = TokenVerifier({"k1": old_public, "k2": new_public}, issuer="shouwang", audience="shouwang")
    old = TokenSigner(old_private, "k1", issuer="shouwang", audience="shouwang")
    new = TokenSigner(new_private, "k2", issuer="shouwang", audience="shouwang")
    p = verifier.verify(old.issue(sub="u1", role=Role.TOWN_ADMIN, scope_path="/c/t1"))
    assert p.role is Role.TOWN_ADMIN and p.scope_path == "/c/t1"
    assert verifier.verify(new.issue(sub="v1", role="volunteer", volunteer_id="v1")).volunteer_id == "v1"
    forged = TokenSigner(generate_keypair()[0], "k2", issuer="shouwang", audience="shouwang")
    with pytest.raises(Unauthorized):
        verifier.verify(forged.issue(sub="x", role="operator"))
    with pytest.raises(Unauthorized) as expired:
        verifier.verify(new.issue(sub="x", role="operator", ttl_s=-60))
    assert expired.value.code == "token_expired"
    with pytest.raises(Unauthorized):
        verifier.verify(TokenSigner(new_private, "k2", issuer="shouwang", audience="other").issue(sub="x", role="operator"))
    with pytest.raises(Unauthorized):
        verifier.verify("not-a-token")


def test_scope_covers_only_the_subtree():
    town = Principal(sub="a", role=Role.TOWN_ADMIN, scope_path="/c/t1")
    assert town.covers("/c/t1") and town.covers("/c/t1/s9")
    assert not town.covers("/c/t10") and not town.covers("/c") and not town.covers(None)
    assert Principal(sub="o", role=Role.OPERATOR).covers("/anything")
    assert not Principal(sub="v", role=Role.VOLUNTEER).covers("/c")


def test_catalog_names_follow_the_convention_and_every_group_has_a_dead_letter_topic():
    names = [t.name for t in CATALOG]
    assert len(names) == len(set(names))
    for name in names:
        producer, stream, version = name.split(".")
        assert version.startswith("v") and version[1:].isdigit()
    for group in CONSUMER_GROUPS:
        assert dead_letter_topic(group) in names
    assert next(t for t in CATALOG if t.name == "registry.volunteers.v1").kafka_config()["cleanup.policy"] == "compact"


def test_a_path_id_that_is_not_a_uuid_is_a_404_naming_the_field():
    assert str(id_or_404("0b6f3c1e-2f55-4b8e-9a51-6f0d2b7a1c11", field="case_id")) == "0b6f3c1e-2f55-4b8e-9a51-6f0d2b7a1c11"
    with pytest.raises(NotFound) as caught:
        id_or_404("案件-1", field="case_id", message="案件不存在")
    assert caught.value.to_dict() == {"detail": {"code": "not_found", "message": "案件不存在", "field": "case_id"}}
