"""The public card check page /verify in a real headless Chromium against the running platform, with every request
outside the gateway refused: an officer pastes a card's QR text and sees the verdict and what the card says.

Screenshots go to a temporary folder, or to `docs/console/` when CONSOLE_SCREENSHOTS names it.
"""

from __future__ import annotations

import base45
import cbor2

from shouwang_shared.contracts.card import PREFIX

from tests.console.pages import open_page
from tests.e2e.journey import bearer, build_county, expect, register_volunteer


async def test_an_officer_checks_a_card_on_the_verify_page_and_sees_it_refused_once_tampered_or_revoked(platform, browser, shots):
    gateway = platform.gateway_url
    async with platform.client() as client:
        county = await build_county(platform, client)
        volunteer = await register_volunteer(client, county)
        card = expect(await client.get("/api/v1/volunteers/me/card", headers=bearer(volunteer.token)), 200)

    page, outside = await open_page(browser, gateway, width=720, height=1000)  # a phone-sized window, as an officer's

    async def check(text: str) -> str:
        await page.goto(f"{gateway}/verify")
        await page.fill("#qr", text)
        await page.click("button.primary")
        await page.wait_for_selector("#verdict")
        return await page.get_attribute("#verdict", "data-status")

    assert await check(card["qr_text"]) == "valid"
    assert "有效" in await page.inner_text("#verdict h2")
    assert await page.inner_text("#card-name") == card["name"]
    assert await page.inner_text("#card-number") == card["volunteer_number"]
    assert await page.inner_text("#card-station") == county.station["name"]
    assert "1 星" in await page.inner_text("#card-star")
    assert "已联网核对" in await page.inner_text("#freshness")
    await page.screenshot(path=shots / "verify.png", full_page=True)

    protected, _, payload, signature = cbor2.loads(base45.b45decode(card["qr_text"][len(PREFIX):])).value
    claims = cbor2.loads(payload)
    claims[-70001] = {**claims[-70001], "sr": 5}
    tampered = PREFIX + base45.b45encode(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, cbor2.dumps(claims), signature]))).decode()
    assert await check(tampered) == "bad_signature"
    assert "签名无效" in await page.inner_text("#verdict h2") and await page.query_selector("#card-name") is None
    assert await check("随便一段文字") == "malformed"

    async with platform.client() as client:
        expect(await client.post(f"/api/v1/volunteers/{volunteer.volunteer_id}/suspend", headers=bearer(county.station_admin_token),
                                 json={"reason": "已离开本辖区"}), 200)
    assert await check(card["qr_text"]) == "revoked"
    assert "已吊销" in await page.inner_text("#verdict h2") and await page.inner_text("#card-name") == card["name"]
    await page.screenshot(path=shots / "verify-revoked.png", full_page=True)
    assert outside == [], f"the page asked for outside resources: {outside}"
    await page.context.close()
