"""The ops console's lists in a real headless Chromium: every list as CSV, the hierarchy and roster, the API docs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.console.pages import expect_list, open_page, serious_accessibility_problems, sign_in


async def test_the_api_docs_render_with_no_internet(platform, browser, shots):
    page, outside = await open_page(browser, platform.gateway_url)
    await page.goto(f"{platform.gateway_url}/docs")
    await page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    await page.screenshot(path=shots / "api-docs.png")
    assert outside == []


async def test_every_list_page_downloads_as_csv_with_its_filters_for_whoever_may_see_it(platform, browser, county):
    gateway = platform.gateway_url
    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["county_admin"])

    async def download(path: str) -> list[list[str]]:
        answer = await page.request.get(f"{gateway}{path}")  # the browser's own cookies: the signed-in session
        assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv"), path
        raw = await answer.body()
        assert raw.startswith(b"\xef\xbb\xbf"), path  # a BOM: Excel reads the Chinese right
        return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))

    headers = {
        "operations": "名称", "triage": "编号", "needs": "类别", "disputes": "事由", "bulletins": "期号", "leaderboard": "名次",
        "commendations": "类别", "training": "日期", "training-behind": "姓名", "hours": "行动", "roster": "姓名", "projects": "名称",
        "redemptions": "申请时间", "pending-rewards": "记入时间",
    }
    for name, first_title in headers.items():
        assert (await download(f"/console/export/{name}.csv"))[0][0] == first_title, name

    everything = await download("/console/export/operations.csv")
    drafts = await download("/console/export/operations.csv?status=draft")  # the page's filter, from the same query string
    assert {row[2] for row in drafts[1:]} <= {"草稿"} and len(drafts) <= len(everything)
    assert len(everything) - 1 == len(expect_list(await (await page.request.get(f"{gateway}/console/operations")).text(), "/console/operations/"))

    await page.goto(f"{gateway}/console/training")  # the page's link carries its filter
    link = await page.get_attribute("#training-behind-csv", "href")
    assert link == f"/console/export/training-behind.csv?unit={county['built'].county['id']}"
    behind = await download(link)
    assert len(behind) - 1 == int(await page.inner_text("#training-behind"))

    assert (await page.request.get(f"{gateway}/console/export/nothing.csv")).status == 404
    stranger, _ = await open_page(browser, gateway)  # not signed in: no file, the sign-in page
    refused = await stranger.request.get(f"{gateway}/console/export/roster.csv", max_redirects=0)
    assert refused.status == 303 and refused.headers["location"] == "/console/login"
    assert outside == []


async def test_admins_browse_the_hierarchy_and_roster_and_only_a_county_admin_reveals_a_phone(platform, browser, county, shots):
    gateway = platform.gateway_url
    volunteer = county["crew"][0]
    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["county_admin"])
    await page.goto(f"{gateway}/console/hierarchy")
    assert int(await page.inner_text("#volunteer-total")) >= len(county["crew"])
    await page.click(f"text={county['built'].town['name']}")  # down to the town
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "hierarchy.png", full_page=True)

    await page.click("text=查看名册")
    assert volunteer.phone[-4:] in await page.inner_text("table")
    await page.select_option("#star", "5")
    await page.click("#roster-filters button")
    assert "star=5" in page.url and volunteer.phone[-4:] not in await page.inner_text("main")  # new volunteers start at one star
    await page.select_option("#star", "1")
    await page.select_option("#training", "compliant")
    await page.click("#roster-filters button")
    assert "training=compliant" in page.url and volunteer.phone[-4:] in await page.inner_text("table")
    assert await page.input_value("#training") == "compliant"  # the filters stay on the page they made
    async with page.expect_download() as downloading:  # the filtered list as a spreadsheet, masked like the page
        await page.click("#roster-csv")
    exported = Path(await (await downloading.value).path()).read_text(encoding="utf-8-sig").splitlines()
    assert exported[0].startswith("姓名,手机（脱敏）") and len(exported) - 1 == int((await page.inner_text(".hint")).split("共 ")[1].split(" 人")[0])
    assert any(volunteer.phone[-4:] in line for line in exported) and not any(volunteer.phone in line for line in exported)
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "roster.png", full_page=True)
    await page.goto(f"{gateway}/console/volunteers/{volunteer.volunteer_id}")
    masked = await page.inner_text("#profile-title ~ table")
    assert volunteer.phone not in masked and volunteer.phone[-4:] in masked
    await page.click("button:has-text('查看')")
    await page.wait_for_selector("#revealed .error")  # no reason, no reveal
    await page.fill("#reason", "联系参加周六护学岗")
    await page.click("button:has-text('查看')")
    await page.wait_for_selector("#revealed dd")
    assert await page.inner_text("#revealed dd") == volunteer.phone
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "volunteer.png", full_page=True)

    town_page, _ = await open_page(browser, gateway)
    await sign_in(town_page, gateway, county["logins"]["town_admin"])
    await town_page.goto(f"{gateway}/console/volunteers/{volunteer.volunteer_id}")
    await town_page.fill("#reason", "想看一下")
    await town_page.click("button:has-text('查看')")
    await town_page.wait_for_selector("#revealed .error")  # registry allows the reveal to county admins and operators only
    assert outside == []
