"""PII keys rotate: the current key seals under its version, retired keys kept by version still open their data."""

from __future__ import annotations

import base64
import json

import pytest

from shouwang_shared.config import PiiKeySettings
from shouwang_shared.pii import PiiCipher, UnknownKeyVersion

KEY_1 = base64.b64encode(b"1" * 32).decode()
KEY_2 = base64.b64encode(b"2" * 32).decode()
INDEX = base64.b64encode(b"i" * 32).decode()


def settings_from(monkeypatch, **env: str) -> PiiKeySettings:
    for name in ("PII_KEY", "PII_KEY_VERSION", "PII_OLD_KEYS", "PII_INDEX_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return PiiKeySettings()


def test_data_sealed_under_key_1_opens_after_rotating_to_key_2_and_refuses_clearly_once_key_1_is_gone(monkeypatch):
    before = settings_from(monkeypatch, PII_KEY=KEY_1, PII_INDEX_KEY=INDEX).pii_cipher()
    sealed = before.encrypt("330102198507150022", context="national_id")
    assert sealed[0] == 1, "stored data today carries version byte 1 (the default)"

    rotated = settings_from(monkeypatch, PII_KEY=KEY_2, PII_KEY_VERSION="2", PII_OLD_KEYS=json.dumps({"1": KEY_1}),
                            PII_INDEX_KEY=INDEX).pii_cipher()
    assert rotated.decrypt(sealed, context="national_id") == "330102198507150022"
    resealed = rotated.encrypt("330102198507150022", context="national_id")
    assert resealed[0] == 2
    assert rotated.decrypt(resealed, context="national_id") == "330102198507150022"
    with pytest.raises(UnknownKeyVersion):
        before.decrypt(resealed, context="national_id")  # version 2 is sealed under key 2, not key 1
    assert rotated.blind_index("330102198507150022", context="national_id") == before.blind_index(
        "330102198507150022", context="national_id"), "the blind index stays on its one key"

    retired = settings_from(monkeypatch, PII_KEY=KEY_2, PII_KEY_VERSION="2", PII_INDEX_KEY=INDEX).pii_cipher()
    with pytest.raises(UnknownKeyVersion, match="version 1.*PII_OLD_KEYS"):
        retired.decrypt(sealed, context="national_id")
    assert retired.decrypt(resealed, context="national_id") == "330102198507150022"


def test_a_key_under_a_version_that_does_not_match_its_data_fails_as_tampering_not_as_wrong_plaintext():
    sealed = PiiCipher(KEY_1, key_version=1).encrypt("13812345678", context="phone")
    swapped = PiiCipher(KEY_2, old_keys={1: KEY_2}, key_version=2)
    with pytest.raises(Exception) as refused:
        swapped.decrypt(sealed, context="phone")
    assert not isinstance(refused.value, UnknownKeyVersion)


@pytest.mark.parametrize("env, problem", [
    ({"PII_KEY_VERSION": "0"}, "pii_key_version"),
    ({"PII_KEY_VERSION": "256"}, "pii_key_version"),
    ({"PII_OLD_KEYS": "1=abc"}, "pii_old_keys"),
    ({"PII_OLD_KEYS": '{"one": "abc"}'}, "pii_old_keys"),
])
def test_bad_rotation_settings_are_refused_naming_the_setting(monkeypatch, env, problem):
    with pytest.raises(ValueError, match=problem):
        settings_from(monkeypatch, PII_KEY=KEY_2, PII_INDEX_KEY=INDEX, **env)


def test_an_old_key_under_the_current_version_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="current version 2"):
        settings_from(monkeypatch, PII_KEY=KEY_2, PII_KEY_VERSION="2", PII_OLD_KEYS=json.dumps({"2": KEY_1})).pii_cipher()


def test_intels_cipher_has_no_index_key_so_it_seals_but_cannot_index():
    """Intel seals dispute parties' phones and keeps no blind index: it is given no index key at all."""
    cipher = PiiCipher(KEY_1)
    assert cipher.decrypt(cipher.encrypt("13906781234", context="dispute_party.phone"), context="dispute_party.phone") == "13906781234"
    with pytest.raises(ValueError, match="PII_INDEX_KEY"):
        cipher.blind_index("13906781234", context="phone")
