"""The ops console's triage queue and case pages in a real headless Chromium: an analyst's day."""

from __future__ import annotations

import uuid
from pathlib import Path

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role

from tests.console.pages import open_page, serious_accessibility_problems, sign_in
from tests.e2e.journey import bearer, expect, police_answer


async def test_an_analyst_triages_splits_merges_a_suggestion_forwards_and_confirms_the_police_answer(platform, browser, county, shots):
    gateway = platform.gateway_url
    name, own_phone, scammer = "郑秀梅", "13957001234", "17099887766"
    async with platform.client() as client:
        tip = expect(await client.post("/api/v1/tips", json={
            "category": "fraud", "lat": 30.4001, "lon": 120.4002,  # far from other tests' fraud tips: its own case
            "text": f"我叫{name}，电话{own_phone}。今天有人用{scammer}冒充公安局打电话，让我把钱转到安全账户"}), 202)
        expect(await client.post("/api/v1/tips", json={
            "category": "fraud", "lat": 30.4003, "lon": 120.4004,
            "text": f"下午也接到{scammer}打来的电话，说是公安局的，让我配合调查把存款转过去，我没理"}), 202)

    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["analyst"])
    await page.goto(f"{gateway}/console/triage")

    async def listed():
        await page.reload()
        link = page.locator("tbody tr", has_text="诈骗").locator("a").first
        return link if await link.count() else None

    link = await eventually(listed, timeout_s=30, message="the tip's case in the triage queue")
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "triage.png", full_page=True)
    await link.click()
    case_url = page.url

    async def tips_shown(count: int):
        async def shown():
            await page.goto(case_url)
            return await page.locator("#tips-title ~ form tbody tr").count() == count or None
        return shown

    await eventually(await tips_shown(2), timeout_s=30, message="both tips of the scam call in one case")
    assert scammer in await page.inner_text("#tips-title ~ form table")
    assert name not in await page.inner_text("#tips-title ~ form table tbody td:nth-child(2)")  # the reporter is a pseudonym

    await page.locator("#tips-title ~ form tbody tr", has_text="配合调查").locator("input[type=checkbox]").check()
    async with page.expect_navigation():  # done: the page reloads itself
        await page.click("button:has-text('拆成新案件')")  # an analyst thinks the second call is another incident
    await eventually(await tips_shown(1), timeout_s=10, message="the second tip split off")
    await page.wait_for_selector("#similar-title")  # ... and the platform suggests it is the same one
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "case-similar.png", full_page=True)
    async with page.expect_navigation():
        await page.locator("#similar-title ~ table tbody tr").first.locator("button:has-text('并入本案')").click()
    await eventually(await tips_shown(2), timeout_s=10, message="the suggestion merged back")

    await page.click("text=认领（加锁）")
    await page.wait_for_selector("text=正在处理：")
    await page.click("button:has-text('核实')")
    await page.wait_for_selector("#draft-title")
    draft = await page.input_value("#summary")
    assert scammer in draft and name not in draft and own_phone not in draft
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "case.png", full_page=True)

    await page.fill("#summary", f"{draft} 举报人{name}")  # an edit that would name the informant is refused
    await page.click("button:has-text('移交公安')")
    await page.wait_for_selector("#forward-result .error")
    await page.fill("#summary", draft)
    await page.click("button:has-text('移交公安')")
    await page.wait_for_function("document.querySelector('.meta .status').textContent.trim() === '已移交公安'")

    await police_answer(platform, "arrest", group=f"police-console-{uuid.uuid4().hex[:6]}")

    async def answered():
        await page.goto(case_url)
        return await page.locator("#police-title").count() or None

    await eventually(answered, timeout_s=30, message="the police answer on the case page")
    row = page.locator("#police-title ~ table tbody tr", has_text="已抓获").first
    async with page.expect_navigation():
        await row.locator("button:has-text('确认')").click()
    await page.wait_for_selector("#police-title ~ table tbody tr:has-text('已确认')")
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "case-police.png", full_page=True)
    assert tip["tip_id"] and outside == []


async def test_an_analyst_filters_the_queue_exports_it_and_claims_triages_and_rejects_cases_in_bulk(platform, browser, county, shots):
    gateway = platform.gateway_url
    async with platform.client() as client:  # two counterfeit tips far apart (no other test sends this category): two cases
        for i, text in enumerate(("镇东超市在卖假冒的名牌白酒，瓶盖印刷模糊", "西街有人在路边卖假冒化肥，包装和正品不一样")):
            expect(await client.post("/api/v1/tips", json={
                "category": "counterfeit", "lat": 30.10 + 0.2 * i, "lon": 120.70 - 0.2 * i, "text": text}), 202)

    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["analyst"])
    rows = page.locator("#triage-queue tbody tr")

    async def both_listed():
        await page.goto(f"{gateway}/console/triage?category=counterfeit")
        return await rows.count() == 2 or None

    await eventually(both_listed, timeout_s=30, message="both counterfeit cases in the filtered queue")
    await page.reload()  # the filter lives in the address: a reload keeps it, and the form shows it
    assert await page.input_value("#category") == "counterfeit" and await rows.count() == 2
    assert all("假冒伪劣" in text for text in await rows.all_inner_texts())
    async with page.expect_download() as downloading:  # the filtered queue as a spreadsheet (UTF-8 with a BOM for Excel)
        await page.click("#triage-csv")
    raw = Path(await (await downloading.value).path()).read_bytes()
    exported = raw.decode("utf-8-sig").splitlines()
    assert raw.startswith(b"\xef\xbb\xbf") and exported[0].startswith("编号,优先级,类别,状态")
    assert len(exported) == 3 and all(",假冒伪劣,新线索," in line for line in exported[1:])

    await page.click("#bulk-claim")  # nothing ticked: refused in words, nothing done
    await page.locator("#triage-result", has_text="勾选").wait_for(timeout=10_000)
    await page.check("#triage-all")
    await page.click("#bulk-reject")  # no reason chosen: refused, naming it
    await page.locator("#triage-result", has_text="驳回原因").wait_for(timeout=10_000)
    async with page.expect_navigation():
        await page.click("#bulk-claim")
    assert await rows.count() == 2 and all(text.strip() for text in await rows.locator("td:nth-child(8)").all_inner_texts())
    assert await page.input_value("#category") == "counterfeit"  # the reload after the action kept the filter

    first, second = [await rows.nth(i).locator("td:nth-child(2)").inner_text() for i in range(2)]
    await rows.nth(0).locator("input[name=case_ids]").check()
    await page.select_option("#bulk-priority", "high")
    async with page.expect_navigation():
        await page.click("#bulk-triage")
    triaged = page.locator("#triage-queue tbody tr", has_text=first.strip())
    assert "已分拣" in await triaged.inner_text() and "高" in await triaged.locator("td:nth-child(3)").inner_text()
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "triage-bulk.png", full_page=True)

    await page.locator("#triage-queue tbody tr", has_text=second.strip()).locator("input[name=case_ids]").check()
    await page.select_option("#bulk-reason", "prank")
    async with page.expect_navigation():
        await page.click("#bulk-reject")
    assert [t.strip() for t in await rows.locator("td:nth-child(2)").all_inner_texts()] == [first.strip()]  # rejected: out of the queue
    async with platform.client() as client:
        analyst = bearer(platform.stack.token(Role.ANALYST, sub="console-bulk-check", scope_path=county["built"].county["path"]))
        rejected = expect(await client.get("/api/v1/cases", headers=analyst, params={"status": "rejected", "category": "counterfeit"}), 200)
        assert [c["reference"] for c in rejected] == [second.strip()]
    assert outside == []
