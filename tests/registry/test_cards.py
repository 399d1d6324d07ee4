"""The digital volunteer card at the registry: only an active volunteer gets one, it verifies against the published
keys, suspension or retirement revokes it in the same transaction, and a reissue after reactivation is a new card."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shouwang_dev.testing import TEST_CARD_KEY, running_app
from shouwang_shared.contracts.card import CardStatus, CardVerifier, generate_private_key_pem, key_id, load_private_key

from registry.main import create_app
from tests.registry.conftest import registry_settings


async def active_volunteer(registry, **extra) -> tuple[dict, dict, dict]:
    """An active volunteer of a fresh station; returns (volunteer, station, their own auth header)."""
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station, **extra)
    activated = await registry.client.post(f"/v1/volunteers/{volunteer['id']}/activate", json={}, headers=registry.admin)
    assert activated.status_code == 200, activated.text
    return activated.json(), station, registry.auth("volunteer", vid=volunteer["id"], sub=volunteer["id"])


async def published_verifier(client) -> CardVerifier:
    """A verifier from the two public documents, as an officer's app would build it."""
    keys = await client.get("/v1/cards/keys")
    revocations = await client.get("/v1/cards/revocations")
    assert keys.status_code == revocations.status_code == 200, (keys.text, revocations.text)
    return CardVerifier.from_documents(keys.json(), revocations.json())


async def test_an_active_volunteer_gets_a_card_that_verifies_against_the_published_keys(registry):
    volunteer, station, own = await active_volunteer(registry, teams=["voluntary_patrol"])
    response = await registry.client.get("/v1/volunteers/me/card", headers=own)
    assert response.status_code == 200, response.text
    card = response.json()
    assert response.headers["cache-control"] == "private, no-store"
    assert card["name"] == volunteer["display_name"] and card["station"] == station["name"] and card["teams"] == ["voluntary_patrol"]
    assert card["star"] == 1 and len(card["volunteer_number"]) == 8 and card["qr_svg"].lstrip().startswith("<?xml")
    assert card["photo_url"] is None and "<svg" in card["qr_svg"]
    issued, expires = datetime.fromisoformat(card["issued_at"]), datetime.fromisoformat(card["expires_at"])
    assert expires - issued == timedelta(hours=24)
    number = (await registry.sql("SELECT volunteer_number FROM volunteers WHERE id = CAST(:v AS uuid)", v=volunteer["id"]))[0][0]
    assert card["volunteer_number"] == f"{number:08d}"

    result = (await published_verifier(registry.client)).verify(card["qr_text"])
    assert result.status is CardStatus.VALID, result
    claims = result.claims
    assert (claims.serial, claims.number, claims.name, claims.station_id, claims.teams) == (
        card["serial"], number, volunteer["display_name"], station["id"], ("voluntary_patrol",))
    assert volunteer["national_id_masked"] not in card["qr_text"]

    again = (await registry.client.get("/v1/volunteers/me/card", headers=own)).json()
    assert again["serial"] == card["serial"] and again["qr_text"] == card["qr_text"], "a fresh card is handed out again"


async def test_a_changed_profile_gets_a_new_card_showing_it(registry):
    volunteer, _, own = await active_volunteer(registry)
    first = (await registry.client.get("/v1/volunteers/me/card", headers=own)).json()
    changed = await registry.client.patch(f"/v1/volunteers/{volunteer['id']}", json={"teams": ["legal_publicity"]}, headers=registry.admin)
    assert changed.status_code == 200, changed.text
    second = (await registry.client.get("/v1/volunteers/me/card", headers=own)).json()
    assert second["serial"] != first["serial"] and second["teams"] == ["legal_publicity"]


async def test_suspension_revokes_the_card_at_once_and_reactivation_issues_a_new_serial(registry):
    volunteer, _, own = await active_volunteer(registry)
    card = (await registry.client.get("/v1/volunteers/me/card", headers=own)).json()
    before = await registry.client.get("/v1/cards/revocations")
    etag = before.headers["etag"]
    assert before.headers["cache-control"] == "public, max-age=60, must-revalidate" and card["serial"] not in before.json()["serials"]
    assert (await registry.client.get("/v1/cards/revocations", headers={"If-None-Match": etag})).status_code == 304

    suspended = await registry.client.post(f"/v1/volunteers/{volunteer['id']}/suspend", json={"reason": "多次无故缺勤"}, headers=registry.admin)
    assert suspended.status_code == 200, suspended.text
    after = await registry.client.get("/v1/cards/revocations", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag and card["serial"] in after.json()["serials"]
    assert (await published_verifier(registry.client)).verify(card["qr_text"]).status is CardStatus.REVOKED

    refused = await registry.client.get("/v1/volunteers/me/card", headers=own)
    assert refused.status_code == 409, refused.text
    error = refused.json()["detail"]
    assert error["code"] == "volunteer_not_active" and error["field"] == "status" and "已暂停" in error["message"] and "多次无故缺勤" in error["message"]

    await registry.client.post(f"/v1/volunteers/{volunteer['id']}/activate", json={"reason": "复核恢复"}, headers=registry.admin)
    reissued = (await registry.client.get("/v1/volunteers/me/card", headers=own)).json()
    assert reissued["serial"] != card["serial"]
    assert (await published_verifier(registry.client)).verify(reissued["qr_text"]).status is CardStatus.VALID

    await registry.client.post(f"/v1/volunteers/{volunteer['id']}/retire", json={"reason": "本人申请退出"}, headers=registry.admin)
    assert (await published_verifier(registry.client)).verify(reissued["qr_text"]).status is CardStatus.REVOKED
    retired = await registry.client.get("/v1/volunteers/me/card", headers=own)
    assert retired.status_code == 409 and "已退出" in retired.json()["detail"]["message"]


async def test_applicants_and_staff_get_no_card(registry):
    _, station = await registry.town_with_station()
    applicant, _ = await registry.volunteer(station)
    response = await registry.client.get("/v1/volunteers/me/card", headers=registry.auth("volunteer", vid=applicant["id"]))
    assert response.status_code == 409 and "待审核" in response.json()["detail"]["message"]
    staff = await registry.client.get("/v1/volunteers/me/card", headers=registry.admin)
    assert staff.status_code == 403 and staff.json()["detail"]["field"] == "role"
    assert (await registry.client.get("/v1/volunteers/me/card")).status_code == 401


async def test_a_rotated_key_keeps_the_old_public_key_published_so_cards_signed_with_it_still_verify(registry, stack):
    """After rotation the registry signs with the new key and publishes both; a card of the old key verifies until it expires."""
    volunteer, _, own = await active_volunteer(registry)
    old_card = (await registry.client.get("/v1/volunteers/me/card", headers=own)).json()
    old_public = load_private_key(TEST_CARD_KEY).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    new_key = generate_private_key_pem()
    settings = registry_settings(stack, registry.database_url, card_signing_key=new_key, card_retired_public_keys=json.dumps([old_public]),
                                 training_review_hour="-1", star_apply_interval_s="0")
    async with running_app(create_app(settings)) as rotated:
        keys = (await rotated.get("/v1/cards/keys")).json()
        new_kid = key_id(load_private_key(new_key).public_key())
        assert keys["active_kid"] == new_kid and [k["kid"] for k in keys["keys"]] == [new_kid, key_id(load_private_key(TEST_CARD_KEY).public_key())]
        verifier = await published_verifier(rotated)
        assert verifier.verify(old_card["qr_text"]).status is CardStatus.VALID
        new_card = (await rotated.get("/v1/volunteers/me/card", headers=own)).json()
        assert new_card["serial"] != old_card["serial"], "a card of the retired key is not handed out again"
        assert verifier.verify(new_card["qr_text"]).status is CardStatus.VALID
        assert verifier.verify(old_card["qr_text"], now=datetime.now(UTC) + timedelta(hours=25)).status is CardStatus.EXPIRED


async def test_without_a_signing_key_cards_are_unavailable_not_an_error(registry, stack):
    settings = registry_settings(stack, registry.database_url, card_signing_key="", training_review_hour="-1", star_apply_interval_s="0")
    async with running_app(create_app(settings)) as keyless:
        response = await keyless.get("/v1/cards/keys")
        assert response.status_code == 503 and response.json()["detail"]["code"] == "card_not_configured"


async def test_a_signing_key_that_is_not_ed25519_is_refused_at_start(registry, stack):
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(ValueError, match="Ed25519"):
        create_app(registry_settings(stack, registry.database_url, card_signing_key=pem))
