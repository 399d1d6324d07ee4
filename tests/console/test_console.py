"""The ops console in a real headless Chromium against the running platform, with every outside request refused.

Screenshots go to a temporary folder, or to `docs/console/` when CONSOLE_SCREENSHOTS names it
(`CONSOLE_SCREENSHOTS=docs/console make test PYTEST_ARGS=tests/console`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, async_playwright

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import ServiceHoursRecorded
from shouwang_shared.envelope import new_event
from shouwang_shared.kafka import make_producer

from tests.e2e.journey import bearer, build_county, expect, police_answer, register_volunteer, wait_until_known_to_dispatch

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[1] / "gateway" / "console_vendor" / "axe.min.js"
POST_LAT, POST_LON = 30.2700, 120.1900
PASSWORD = "控制台-测试-口令-2026"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go."""
    wanted = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("console")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
async def browser() -> Browser:
    """Debian's Chromium driven by Playwright (`playwright install` cannot download here)."""
    assert Path(CHROMIUM).exists(), "the console tests need Debian's chromium package: apt-get install -y chromium"
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
async def county(platform):
    """A county with a town admin and an analyst who sign in with passwords, and two volunteers near the post."""
    async with platform.client() as client:
        built = await build_county(platform, client)
        ops = bearer(platform.stack.token(Role.OPERATOR, sub="console-bootstrap"))
        logins = {}
        for role, unit in (("town_admin", built.town), ("analyst", built.county), ("county_admin", built.county)):
            username = f"console_{role}_{uuid.uuid4().hex[:6]}"
            expect(await client.post("/api/v1/staff", headers=ops, json={
                "username": username, "password": PASSWORD, "role": role, "display_name": "控制台测试", "org_unit_id": unit["id"]}), 201)
            logins[role] = username
        crew = [await register_volunteer(client, built, lat=POST_LAT + 0.0005 * i, lon=POST_LON) for i in range(2)]
        await wait_until_known_to_dispatch(platform, [v.volunteer_id for v in crew])
    return {"built": built, "logins": logins, "crew": crew}


async def _page(browser: Browser, gateway: str) -> tuple[Page, list[str]]:
    """A fresh browser context whose requests anywhere but the gateway are refused (and recorded)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    outside: list[str] = []

    async def only_the_gateway(route):
        if route.request.url.startswith(gateway):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_the_gateway)
    return await context.new_page(), outside


async def _sign_in(page: Page, gateway: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{gateway}/console/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button.primary")


async def _serious_accessibility_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page (injected from the vendored file)."""
    await page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']}: {v['help']}" for v in result["violations"] if v["impact"] in ("serious", "critical")]


async def test_a_town_admin_runs_an_operation_from_the_console_and_sees_the_board_live(platform, browser, county, shots):
    gateway = platform.gateway_url
    page, outside = await _page(browser, gateway)
    page.on("dialog", lambda dialog: dialog.accept())

    await page.goto(f"{gateway}/console/")
    assert page.url.endswith("/console/login")
    await _sign_in(page, gateway, county["logins"]["town_admin"], "错误的口令")
    assert await page.inner_text("#login-error") == "用户名或密码错误"
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "login.png")

    await _sign_in(page, gateway, county["logins"]["town_admin"])
    assert page.url.endswith("/console/operations")
    await page.fill("#name", "元宵灯会安保（控制台）")
    await page.click("form[action='/console/operations'] button.primary")
    assert "/console/operations/" in page.url and await page.inner_text(".meta .status") == "草稿"

    now = datetime.now(UTC).replace(microsecond=0)
    messy = "name,lat,lon,zone,shift_start,shift_end,headcount\n灯会西门,30.27,120.19,西片,明天早上,后天,两个\n"
    await page.set_input_files("#file", files=[{"name": "岗位.csv", "mimeType": "text/csv", "buffer": messy.encode()}])
    await page.click("#import-title ~ form button.primary")
    await page.wait_for_selector("#import-result .error")  # refused as a whole, naming the row and column
    assert "导入失败" in await page.inner_text("#import-result") and "posts[0]" in await page.inner_text("#import-result")
    csv = ("name,lat,lon,zone,shift_start,shift_end,headcount\n"
           f"灯会东门,{POST_LAT},{POST_LON},东片,{(now - timedelta(minutes=2)).isoformat()},{(now + timedelta(hours=3)).isoformat()},2\n")
    await page.set_input_files("#file", files=[{"name": "岗位.csv", "mimeType": "text/csv", "buffer": csv.encode()}])
    await page.click("#import-title ~ form button.primary")
    await page.wait_for_selector("#import-result .ok")
    assert "已导入 1 个岗位" in await page.inner_text("#import-result")
    await page.wait_for_function("document.querySelector('#required').textContent.trim() === '2'")  # pushed by the stream
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "operation-draft.png", full_page=True)

    await page.click("text=启动行动")
    await page.wait_for_function("document.querySelector('.meta .status').textContent.trim() !== '草稿'")
    operation_id = page.url.rsplit("/", 1)[-1]

    async with platform.client() as client:  # a volunteer accepts and checks in on the phone
        async def offered():
            for volunteer in county["crew"]:
                body = expect(await client.get("/api/v1/assignments/mine", headers=bearer(volunteer.token)), 200)
                items = body["items"] if isinstance(body, dict) else body
                mine = [o for o in items if o["operation_id"] == operation_id]
                if mine:
                    return volunteer, mine[0]
            return None

        volunteer, offer = await eventually(offered, timeout_s=30, message="an offer after activation")
        expect(await client.post(f"/api/v1/assignments/{offer['id']}/accept", headers=bearer(volunteer.token)), 200)
        expect(await client.post(f"/api/v1/assignments/{offer['id']}/check-in", headers=bearer(volunteer.token),
                                 json={"lat": POST_LAT, "lon": POST_LON}), 200)
    await page.wait_for_function("document.querySelector('#checked-in').textContent.trim() === '1'", timeout=20_000)
    assert (await page.inner_text("#accepted")).strip() == "1"
    assert await page.text_content("#operation-map .map-post text") == "灯会东门 1/2"  # the map follows the board
    assert await page.locator("#operation-map .post-part").count() == 1
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "operation-board.png", full_page=True)

    await page.goto(f"{gateway}/console/operations")
    assert "元宵灯会安保（控制台）" in await page.inner_text("table")
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "operations.png", full_page=True)

    forged = await page.request.post(f"{gateway}/console/operations", form={"name": "没有 CSRF 令牌"})
    assert forged.status == 403 and (await forged.json())["detail"]["field"] == "csrf_token"
    assert outside == []


async def test_a_role_without_operations_rights_is_refused_in_the_console_as_in_the_api(platform, browser, county):
    gateway = platform.gateway_url
    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["analyst"])
    assert page.url.endswith("/console/operations")
    assert "无权" in await page.inner_text(".error")  # dispatch refuses the list to an analyst, and the page says so
    await page.fill("#name", "研判员不能建行动")
    await page.click("form[action='/console/operations'] button.primary")
    assert "无权" in await page.inner_text("#create-error")
    await page.click("text=退出登录")
    assert page.url.endswith("/console/login")
    await page.goto(f"{gateway}/console/operations")
    assert page.url.endswith("/console/login")  # the session is gone
    assert outside == []


async def test_a_station_admin_sees_only_their_station_and_strangers_get_no_console_page(platform, browser, county):
    gateway = platform.gateway_url
    own = county["built"].station
    async with platform.client() as client:
        other = await build_county(platform, client)  # another town's station, under the same county
        stranger = await register_volunteer(client, other, lat=30.3600, lon=120.3600)
        username = f"console_station_{uuid.uuid4().hex[:6]}"
        expect(await client.post("/api/v1/staff", headers=bearer(platform.stack.token(Role.OPERATOR, sub="console-bootstrap")), json={
            "username": username, "password": PASSWORD, "role": "station_admin", "display_name": "站点管理员", "org_unit_id": own["id"]}), 201)

    page, outside = await _page(browser, gateway)
    for path in ("/console/operations", "/console/triage", "/console/volunteers", f"/console/volunteers/{stranger.volunteer_id}",
                 "/console/hierarchy"):  # nobody signed in: every page sends them to sign in
        await page.goto(f"{gateway}{path}")
        assert page.url.endswith("/console/login"), path
    await _sign_in(page, gateway, stranger.phone)  # a volunteer has no console account: their phone is no username
    assert "/console/login" in page.url and await page.locator(".error").count()

    await _sign_in(page, gateway, username)
    await page.goto(f"{gateway}/console/hierarchy")
    assert own["name"] in await page.inner_text(".crumbs")  # their tree starts at their station
    await page.goto(f"{gateway}/console/volunteers")
    assert stranger.phone[-4:] not in await page.inner_text("main")
    for path in (f"/console/hierarchy?unit={other.station['id']}", f"/console/volunteers?unit={other.station['id']}",
                 f"/console/volunteers/{stranger.volunteer_id}"):  # another station's pages, typed into the address bar
        await page.goto(f"{gateway}{path}")
        assert await page.locator(".error").count(), path
        assert stranger.phone[-4:] not in await page.inner_text("main"), path
    assert await _serious_accessibility_problems(page) == []
    assert outside == []


async def test_a_county_admin_works_needs_mediation_and_bulletins_from_the_console(platform, browser, county, shots):
    gateway = platform.gateway_url
    built = county["built"]
    tag = uuid.uuid4().hex[:8]
    need_text, summary, title = f"独居老人家里漏水，想请志愿者帮忙联系维修（{tag}）", f"两户因楼道堆放杂物争吵（{tag}）", f"谨防冒充客服退款诈骗（{tag}）"
    async with platform.client() as client:
        expect(await client.post("/api/v1/needs", json={"category": "elder_care", "description": need_text, "place_text": "东门社区"}), 201)
        expect(await client.post("/api/v1/disputes", headers=bearer(built.station_admin_token), json={
            "summary": summary, "category": "neighbourhood", "org_path": built.station["path"],
            "parties": [{"name": "周大妈", "role": "applicant", "phone": "13900001111"}, {"name": "吴先生", "role": "respondent"}]}), 201)
        expect(await client.post("/api/v1/bulletins", headers=bearer(built.analyst_token), json={
            "title": title, "body": "近期有人冒充网店客服以退款为名索要验证码，请勿转账。", "case_type": "fraud",
            "audience_org_paths": [built.town["path"]]}), 201)

    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["county_admin"])
    await page.goto(f"{gateway}/console/community")
    row = page.locator("#needs tbody tr", has_text=need_text)
    await row.locator("select").select_option("in_progress")
    async with page.expect_navigation():
        await row.locator("button:has-text('更新')").click()
    assert "处理中" in await page.locator("#needs tbody tr", has_text=need_text).inner_text()
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "community.png", full_page=True)

    async with page.expect_navigation():
        await page.locator("#drafts tbody tr", has_text=title).locator("button:has-text('发布')").click()
    assert await page.locator("#drafts tbody tr", has_text=title).count() == 0
    assert await page.locator("#published tbody tr", has_text=title).count() == 1
    assert re.search(r"\d{4}年第\d+期", await page.locator("#published tbody tr", has_text=title).inner_text())  # the county's issue number

    await page.click(f"text={summary}")
    assert "139****1111" in await page.inner_text("#parties-title ~ table") and "13900001111" not in await page.content()
    await page.fill("#held_at", "2026-12-03T19:30")
    await page.fill("#place", "社区调解室")
    await page.fill("#notes", "双方同意各自清理楼道")
    async with page.expect_navigation():
        await page.click("button:has-text('记录本次调解')")
    assert "19:30 社区调解室：双方同意各自清理楼道" in await page.inner_text("#sessions")
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "dispute.png", full_page=True)
    async with page.expect_navigation():
        await page.click("button:has-text('结案')")
    assert "已结案" in await page.inner_text(".meta")
    assert outside == []


async def test_a_county_admin_registers_a_training_and_sees_who_is_behind(platform, browser, county, shots):
    gateway = platform.gateway_url
    title = f"平安志愿者职业道德培训（{uuid.uuid4().hex[:8]}）"
    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["county_admin"])
    await page.goto(f"{gateway}/console/training")
    assert int(await page.inner_text("#training-volunteers")) >= len(county["crew"])
    await page.fill("#title", title)
    await page.select_option("#level", "town")  # a county's training is county level: refused, naming the level
    await page.fill("#held_on", datetime.now(UTC).date().isoformat())
    await page.click("form[action='/console/training'] button.primary")
    assert "级别" in await page.inner_text("#training-error") and await page.input_value("#title") == title
    await page.select_option("#level", "county")
    await page.click("form[action='/console/training'] button.primary")
    assert page.url.endswith("/console/training")
    assert await page.locator("#training-sessions tbody tr", has_text=title).count() == 1
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "training.png", full_page=True)

    await page.goto(f"{gateway}/console/rewards?period=2026&unit=hours")  # the period and basis stay in the URL
    assert await page.input_value("#period") == "2026" and await page.input_value("#unit") == "hours"
    assert "2026 服务时长排行" in await page.inner_text("#board-title")
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "rewards.png", full_page=True)
    volunteer = county["crew"][0]
    await page.goto(f"{gateway}/console/volunteers/{volunteer.volunteer_id}")
    assert float(await page.inner_text("#points")) >= 0 and float(await page.inner_text("#hours")) >= 0  # rewards' record, staff view
    assert outside == []


async def test_the_api_docs_render_with_no_internet(platform, browser, shots):
    page, outside = await _page(browser, platform.gateway_url)
    await page.goto(f"{platform.gateway_url}/docs")
    await page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    await page.screenshot(path=shots / "api-docs.png")
    assert outside == []


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

    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["analyst"])
    await page.goto(f"{gateway}/console/triage")

    async def listed():
        await page.reload()
        link = page.locator("tbody tr", has_text="诈骗").locator("a").first
        return link if await link.count() else None

    link = await eventually(listed, timeout_s=30, message="the tip's case in the triage queue")
    assert await _serious_accessibility_problems(page) == []
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
    assert await _serious_accessibility_problems(page) == []
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
    assert await _serious_accessibility_problems(page) == []
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
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "case-police.png", full_page=True)
    assert tip["tip_id"] and outside == []


async def test_an_analyst_filters_the_queue_exports_it_and_claims_triages_and_rejects_cases_in_bulk(platform, browser, county, shots):
    gateway = platform.gateway_url
    async with platform.client() as client:  # two counterfeit tips far apart (no other test sends this category): two cases
        for i, text in enumerate(("镇东超市在卖假冒的名牌白酒，瓶盖印刷模糊", "西街有人在路边卖假冒化肥，包装和正品不一样")):
            expect(await client.post("/api/v1/tips", json={
                "category": "counterfeit", "lat": 30.10 + 0.2 * i, "lon": 120.70 - 0.2 * i, "text": text}), 202)

    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["analyst"])
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
    assert await _serious_accessibility_problems(page) == []
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


async def test_a_town_admin_marks_a_training_attended_in_bulk_and_sees_who_is_behind_per_unit(platform, browser, county, shots):
    built, gateway = county["built"], platform.gateway_url
    title = f"镇级业务技能培训（{uuid.uuid4().hex[:8]}）"
    async with platform.client() as client:
        held = expect(await client.post("/api/v1/training/sessions", headers=bearer(built.town_admin_token), json={
            "title": title, "level": "town", "topic": "skills", "org_unit_id": built.town["id"],
            "held_on": datetime.now(UTC).date().isoformat()}), 201)

    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/training")
    units = page.locator("#behind-by-unit tbody tr")  # who is behind, per unit below the town, each a link to that unit
    assert await units.count() >= 1 and built.station["name"] in await page.inner_text("#behind-by-unit")
    await units.filter(has_text=built.station["name"]).locator("a").click()
    assert page.url.endswith(f"/console/training?unit={built.station['id']}")
    assert await page.get_attribute("#training-behind-csv", "href") == f"/console/export/training-behind.csv?unit={built.station['id']}"
    picked = [t.strip() for t in await page.locator("#org-unit option").all_inner_texts()]  # the org picker: the scope's tree
    assert picked[0] == "本人辖区" and picked[1].startswith(built.town["name"]) and any(built.station["name"] in t for t in picked[2:])
    assert await page.input_value("#org-unit") == built.station["id"]  # the unit in the address is the one picked
    await page.select_option("#org-unit", built.town["id"])
    await page.click("#training-filters button")
    assert page.url.endswith(f"/console/training?unit={built.town['id']}")

    await page.locator("#training-sessions tbody tr", has_text=title).locator("a").click()
    await page.wait_for_load_state()  # htmx (deferred) has bound the page's buttons
    assert page.url.endswith(f"/console/training/{held['id']}") and await page.inner_text("#session-attended") == "0"
    await page.click("#attendance-record")  # nothing ticked: refused in words
    await page.locator("#attendance-result", has_text="勾选").wait_for(timeout=10_000)
    crew_rows = [page.locator("#attendance tbody tr", has_text=v.phone[-4:]) for v in county["crew"]]
    for row in crew_rows:
        assert await row.count() == 1 and county["crew"][0].phone not in await page.inner_text("#attendance")  # phones masked
        assert built.station["name"] in await row.inner_text() and built.station["id"] not in await row.inner_text()  # by name
        await row.locator("input[name=volunteer_ids]").check()
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "training-attendance.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#attendance-record")
    assert await page.inner_text("#session-attended") == str(len(county["crew"]))
    await crew_rows[0].locator("input[name=volunteer_ids]").check()  # marked again: still once
    async with page.expect_navigation():
        await page.click("#attendance-record")
    assert await page.inner_text("#session-attended") == str(len(county["crew"]))

    await page.goto(f"{gateway}/console/training/{uuid.uuid4()}")  # not a session of the scope
    assert "没有这场培训" in await page.inner_text(".error")
    assert outside == []


async def test_a_town_admin_browses_a_service_project_its_shifts_and_sign_ups_and_prints_a_shift_qr(platform, browser, county, shots):
    built, gateway = county["built"], platform.gateway_url
    county_time = ZoneInfo("Asia/Shanghai")
    start = (datetime.now(county_time) + timedelta(hours=2)).replace(second=0, microsecond=0)
    name = f"实验小学护学岗（{uuid.uuid4().hex[:8]}）"
    async with platform.client() as client:
        admin = bearer(built.town_admin_token)
        project = expect(await client.post("/api/v1/projects", headers=admin, json={
            "kind": "school_patrol", "name": name, "org_path": built.station["path"], "capacity": 2, "shift_minutes": 60,
            "places": [{"name": "实验小学东门", "lat": POST_LAT + 0.03, "lon": POST_LON}],
            "schedule": {"rrule": "FREQ=DAILY", "starts_on": start.date().isoformat(), "start_time": start.strftime("%H:%M"),
                         "ends_before": (start.date() + timedelta(days=3)).isoformat()}}), 201)
        shifts = expect(await client.get(f"/api/v1/projects/{project['id']}/shifts", headers=admin), 200)
        first = min(shifts, key=lambda x: x["starts_at"])
        expect(await client.post(f"/api/v1/shifts/{first['id']}/signup", headers=bearer(county["crew"][1].token)), 201)

    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/projects?kind=school_patrol")  # the filter in the address
    assert await page.input_value("#kind") == "school_patrol"
    await page.locator("#projects tbody tr", has_text=name).locator("a").click()
    assert page.url.endswith(f"/console/projects/{project['id']}")
    assert await page.locator("#shifts tbody tr").count() == len(shifts)
    first_row = page.locator("#shifts tbody tr").first
    assert "1 / 2" in await first_row.inner_text() and "实验小学东门" in await first_row.inner_text()
    assert await page.locator("#signups tbody tr", has_text="已确认").count() == 1
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "project.png", full_page=True)

    await first_row.locator("a:has-text('打印二维码')").click()
    assert page.url.endswith(f"/console/projects/{project['id']}/shifts/{first['id']}/qr")
    assert await page.locator("#shift-qr svg").count() == 1
    assert "实验小学东门" in await page.inner_text("#qr-shift")
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "shift-qr.png", full_page=True)

    stranger, _ = await _page(browser, gateway)  # a station admin of the same station may print; an analyst has no projects
    await _sign_in(stranger, gateway, county["logins"]["analyst"])
    await stranger.goto(f"{gateway}/console/projects/{project['id']}/shifts/{first['id']}/qr")
    assert await stranger.locator("#shift-qr").count() == 0 and await stranger.locator(".error").count() == 1
    assert outside == []


async def test_every_list_page_downloads_as_csv_with_its_filters_for_whoever_may_see_it(platform, browser, county):
    gateway = platform.gateway_url
    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["county_admin"])

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
    stranger, _ = await _page(browser, gateway)  # not signed in: no file, the sign-in page
    refused = await stranger.request.get(f"{gateway}/console/export/roster.csv", max_redirects=0)
    assert refused.status == 303 and refused.headers["location"] == "/console/login"
    assert outside == []


def expect_list(html: str, prefix: str) -> set[str]:
    """The distinct links a page's list holds that start with `prefix`."""
    return set(re.findall(rf'href="({re.escape(prefix)}[^"/]+)"', html))


async def test_admins_browse_the_hierarchy_and_roster_and_only_a_county_admin_reveals_a_phone(platform, browser, county, shots):
    gateway = platform.gateway_url
    volunteer = county["crew"][0]
    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["county_admin"])
    await page.goto(f"{gateway}/console/hierarchy")
    assert int(await page.inner_text("#volunteer-total")) >= len(county["crew"])
    await page.click(f"text={county['built'].town['name']}")  # down to the town
    assert await _serious_accessibility_problems(page) == []
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
    assert await _serious_accessibility_problems(page) == []
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
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "volunteer.png", full_page=True)

    town_page, _ = await _page(browser, gateway)
    await _sign_in(town_page, gateway, county["logins"]["town_admin"])
    await town_page.goto(f"{gateway}/console/volunteers/{volunteer.volunteer_id}")
    await town_page.fill("#reason", "想看一下")
    await town_page.click("button:has-text('查看')")
    await town_page.wait_for_selector("#revealed .error")  # registry allows the reveal to county admins and operators only
    assert outside == []


async def test_the_county_report_shows_the_reports_figures_and_downloads_them_as_csv(platform, browser, county, shots):
    gateway = platform.gateway_url
    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["county_admin"])
    today = datetime.now(UTC).date()
    period = f"from={(today - timedelta(days=1)).isoformat()}&to={(today + timedelta(days=1)).isoformat()}"

    async def report_api() -> dict:
        async with platform.client() as client:
            admin = bearer(platform.stack.token(Role.COUNTY_ADMIN, scope_path=county["built"].county["path"]))
            return expect(await client.get(f"/api/v1/reports/figures?{period}", headers=admin), 200)

    async def shown_agrees():  # the page and the API read the same figures once the events have settled
        await page.goto(f"{gateway}/console/reports?{period}")
        figures = await report_api()
        shown = (int(await page.inner_text("#fig-tips")), int(await page.inner_text("#fig-active")), int(await page.inner_text("#fig-bulletins")))
        return shown == (figures["tips"]["taken_in"], figures["volunteers"]["by_status"].get("active", 0), figures["bulletins"]["issued"])

    await eventually(shown_agrees, timeout_s=30, message="the report page showing the API's figures")
    assert county["built"].county["path"] in await page.inner_text("#report-scope")
    assert await page.locator("#report-operations tbody tr").count() >= 1  # the town admin's operation of the first test
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "report.png", full_page=True)

    async with page.expect_download() as download_info:
        await page.click("#report-csv")
    download = await download_info.value
    text = Path(await download.path()).read_text(encoding="utf-8-sig")
    assert text.startswith("section,measure,key,value") and "\ntips,taken_in,," in text

    await page.click("#report-operations tbody tr a")
    assert "/console/reports/operations/" in page.url
    assert int(await page.inner_text("#op-dispatched")) >= 1
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "report-operation.png", full_page=True)

    town_page, _ = await _page(browser, gateway)  # a town admin's report is their town's; another unit's is refused in words
    await _sign_in(town_page, gateway, county["logins"]["town_admin"])
    await town_page.goto(f"{gateway}/console/reports?{period}")
    assert county["built"].town["path"] in await town_page.inner_text("#report-scope")
    await town_page.goto(f"{gateway}/console/reports?unit={county['built'].county['id']}&{period}")
    assert "管辖范围" in await town_page.inner_text("[role=alert]")
    assert outside == []


async def test_a_town_admin_approves_hours_in_bulk_and_hands_over_or_declines_what_they_buy(platform, browser, county, shots):
    built, gateway = county["built"], platform.gateway_url
    lat, lon = POST_LAT + 0.02, POST_LON  # a post of its own, away from the other tests' posts
    async with platform.client() as client:
        crew = [await register_volunteer(client, built, lat=lat + 0.0005 * (i + 1), lon=lon) for i in range(2)]  # free now: the module's crew hold shifts
        await wait_until_known_to_dispatch(platform, [v.volunteer_id for v in crew])
        admin = bearer(built.town_admin_token)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        op = expect(await client.post("/api/v1/operations", headers=admin, json={
            "name": f"夜市巡防（{uuid.uuid4().hex[:8]}）", "org_path": built.town["path"], "posts": [{
                "name": "夜市北口", "lat": lat, "lon": lon, "org_path": built.station["path"], "shift_start": start.isoformat(),
                "shift_end": (start + timedelta(hours=2)).isoformat(), "headcount": 2}]}), 201)
        expect(await client.post(f"/api/v1/operations/{op['id']}/activate", headers=admin), 202)

        async def offers():
            found = []
            for volunteer in crew:
                body = expect(await client.get("/api/v1/assignments/mine", headers=bearer(volunteer.token)), 200)
                found += [(volunteer, o) for o in (body["items"] if isinstance(body, dict) else body) if o["operation_id"] == op["id"]]
            return found if len(found) == len(crew) else None

        taken = await eventually(offers, timeout_s=30, message="an offer for each of the night-market crew")
        token = expect(await client.get(f"/api/v1/operations/{op['id']}/posts/{taken[0][1]['post_id']}/checkin-token?mode=shift",
                                        headers=admin), 200)["token"]
        for (volunteer, offer), away in zip(taken, (0.03, 0.0), strict=True):  # the first phone 3 km away, the second at the post
            phone = bearer(volunteer.token)
            expect(await client.post(f"/api/v1/assignments/{offer['id']}/accept", headers=phone), 200)
            arrived = expect(await client.post(f"/api/v1/assignments/{offer['id']}/check-in", headers=phone,
                                               json={"qr_token": token, "lat": lat + away, "lon": lon}), 200)
            assert arrived["review_reason"] == ("far_from_post" if away else None)
            assert expect(await client.post(f"/api/v1/assignments/{offer['id']}/check-out", headers=phone), 200)["hours_status"] == "pending"

    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/hours")
    rows = page.locator("#pending-hours tbody tr", has_text="夜市北口")  # the clean check-out waits too (HOURS_APPROVAL=all)
    assert sorted([(await rows.nth(i).locator("td").last.inner_text()).strip() for i in range(await rows.count())]) == ["无", "签到位置离岗位较远"]
    assert await _serious_accessibility_problems(page) == []
    await page.click("#hours-approve")  # nothing ticked: refused in words, nothing decided
    await page.locator("#hours-result", has_text="勾选").wait_for(timeout=10_000)
    await page.check("#hours-all")
    await page.screenshot(path=shots / "hours.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#hours-approve")
    assert await page.locator("#pending-hours tbody tr", has_text="夜市北口").count() == 0
    async with platform.client() as client:
        left = expect(await client.get("/api/v1/hours/pending", headers=bearer(built.town_admin_token)), 200)
        assert not {offer["id"] for _, offer in taken} & {h["assignment_id"] for h in left}
    await _redeem_and_decide_on_the_rewards_page(platform, page, built, crew, shots)
    assert outside == []


async def test_a_town_admin_cancels_offers_and_has_the_lost_slot_offered_again_from_the_operation_page(platform, browser, county, shots):
    built, gateway = county["built"], platform.gateway_url
    lat, lon = POST_LAT + 0.04, POST_LON  # a post of its own, tomorrow: the module's crew hold today's shifts
    async with platform.client() as client:
        crew = [await register_volunteer(client, built, lat=lat + 0.0005 * (i + 1), lon=lon) for i in range(3)]
        await wait_until_known_to_dispatch(platform, [v.volunteer_id for v in crew])
        admin = bearer(built.town_admin_token)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        op = expect(await client.post("/api/v1/operations", headers=admin, json={
            "name": f"庙会疏导（{uuid.uuid4().hex[:8]}）", "org_path": built.town["path"], "posts": [{
                "name": "庙会南口", "lat": lat, "lon": lon, "org_path": built.station["path"], "shift_start": start.isoformat(),
                "shift_end": (start + timedelta(hours=2)).isoformat(), "headcount": 2}]}), 201)
        expect(await client.post(f"/api/v1/operations/{op['id']}/activate", headers=admin), 202)

        async def planned():
            offers = expect(await client.get(f"/api/v1/operations/{op['id']}/offers", headers=admin), 200)
            return offers if len(offers) == 2 else None

        first_offers = await eventually(planned, timeout_s=30, message="two offers after activation")

    page, outside = await _page(browser, gateway)
    page.on("dialog", lambda dialog: dialog.accept())
    await _sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/operations/{op['id']}?offer_status=offered")
    assert await page.locator("#offers tbody tr").count() == 2
    assert await page.input_value("#offer_status") == "offered"  # the filter stays in the URL
    assert await _serious_accessibility_problems(page) == []
    await page.click("#offers-cancel")  # nothing ticked: refused in words, nothing cancelled
    await page.locator("#offers-result", has_text="勾选").wait_for(timeout=10_000)
    taken_back = first_offers[0]
    await page.check(f"#offer-{taken_back['id']}")
    await page.click("#offers-cancel")  # no reason: the volunteer must be told why
    await page.locator("#offers-result", has_text="原因").wait_for(timeout=10_000)
    await page.fill("#offers-reason", "岗位合并")
    await page.screenshot(path=shots / "operation-offers.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#offers-cancel")

    await page.goto(f"{gateway}/console/operations/{op['id']}?offer_status=cancelled")
    rows = page.locator("#offers tbody tr")
    assert await rows.count() == 1 and "岗位合并" in await rows.first.inner_text()
    async with platform.client() as client:  # the volunteer's phone sees the cancellation
        volunteer = next(v for v in crew if v.volunteer_id == taken_back["volunteer_id"])
        mine = expect(await client.get("/api/v1/assignments/mine", headers=bearer(volunteer.token)), 200)
        assert [o["status"] for o in (mine["items"] if isinstance(mine, dict) else mine) if o["id"] == taken_back["id"]] == ["cancelled"]

    await page.check("#offers-all")
    async with page.expect_navigation():
        await page.click("#offers-reoffer")
    assert (await page.locator("#offers tbody tr").first.locator("td").last.inner_text()).strip() != ""  # re-offered at …
    await page.goto(f"{gateway}/console/operations/{op['id']}?offer_status=offered")
    wave = page.locator("#offers tbody tr", has=page.locator("td:nth-child(5)", has_text="1"))
    assert await wave.count() >= 1, "the lost slot went out again in a backfill wave"
    async with platform.client() as client:
        again = expect(await client.post(f"/api/v1/operations/{op['id']}/offers/reoffer", headers=bearer(built.town_admin_token),
                                          json={"assignment_ids": [taken_back["id"]]}), 200)
        assert again["already_reoffered"] == [taken_back["id"]] and again["offers_sent"] == 0

    link = await page.get_attribute("#offers-csv", "href")
    assert link == f"/console/export/offers.csv?operation_id={op['id']}&offer_status=offered"
    answer = await page.request.get(f"{gateway}{link}")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    rows_csv = list(csv.reader(io.StringIO((await answer.body()).decode("utf-8-sig"))))
    async with platform.client() as client:
        every_offer = expect(await client.get(f"/api/v1/operations/{op['id']}/offers", headers=admin), 200)
    assert rows_csv[0][0] == "岗位" and len(rows_csv) - 1 == sum(o["status"] == "offered" for o in every_offer) > 2  # every page
    assert {row[2] for row in rows_csv[1:]} == {"待答复"}
    assert await _serious_accessibility_problems(page) == []

    # Every status, two offers a page here (CONSOLE_OFFERS_PAGE in tests/conftest.py): page by page, the API's order.
    await page.goto(f"{gateway}/console/operations/{op['id']}")
    assert await page.locator("#offers-prev").count() == 0 and "第 1–2 条，后面还有" in await page.inner_text("#offers caption")
    paged = []
    while True:
        paged += [await box.get_attribute("value") for box in await page.locator("#offers input[name=assignment_ids]").all()]
        if not await page.locator("#offers-next").count():
            break
        async with page.expect_navigation():
            await page.click("#offers-next")
    assert paged == [o["id"] for o in every_offer] and len(paged) > 2
    last_caption = await page.inner_text("#offers caption")
    assert f"{len(paged)} 条（按邀请先后）" in last_caption and "后面还有" not in last_caption
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "operation-offers-last-page.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#offers-prev")
    assert await page.locator("#offers tbody tr").count() == 2
    await page.goto(f"{gateway}/console/operations/{op['id']}?offset=30")  # past the end: said, with the way back
    await page.locator("#offers-first").wait_for(timeout=10_000)
    assert outside == []


async def test_a_town_admin_creates_and_edits_a_service_project_and_generates_its_shifts(platform, browser, county, shots):
    built, gateway = county["built"], platform.gateway_url
    tomorrow = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).date()
    name = f"社区关爱走访（{uuid.uuid4().hex[:8]}）"
    page, outside = await _page(browser, gateway)
    await _sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/projects")
    assert await _serious_accessibility_problems(page) == []

    await page.select_option("#project-kind", "care")
    await page.fill("#project-name", name)
    await page.fill("#project-org", built.station["path"])
    await page.fill("#place-name", "幸福里社区活动室")
    await page.fill("#place-lat", str(POST_LAT + 0.05))
    await page.fill("#place-lon", str(POST_LON))
    await page.fill("#project-capacity", "0")  # refused by dispatch, naming the field; the form keeps what was typed
    await page.fill("#project-rrule", "FREQ=DAILY")
    await page.fill("#project-starts-on", tomorrow.isoformat())
    await page.fill("#project-start-time", "09:00")
    await page.fill("#project-ends-before", (tomorrow + timedelta(days=3)).isoformat())
    await page.click("#create-project button.primary")
    assert "capacity" in await page.inner_text("#create-project-error")
    assert await page.input_value("#project-name") == name
    await page.fill("#project-capacity", "2")
    await page.click("#create-project button.primary")
    assert re.search(r"/console/projects/[0-9a-f-]{36}$", page.url), page.url
    project_id = page.url.rsplit("/", 1)[-1]
    assert await page.locator("#shifts tbody tr").count() == 3  # daily, tomorrow and the two days after
    assert "每班 2 人" in await page.inner_text(".meta")

    await page.fill("#edit-capacity", "3")
    await page.fill("#edit-name", name + "·周末")
    await page.fill("#edit-horizon", "10")
    await page.screenshot(path=shots / "project-edit.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#edit-project-save")
    assert await page.inner_text("h1") == name + "·周末" and "每班 3 人" in await page.inner_text(".meta")
    assert {(await c.inner_text()).split("/")[1].strip() for c in await page.locator("#shifts tbody tr td:nth-child(4)").all()} == {"3"}
    await page.fill("#edit-capacity", "999")
    await page.click("#edit-project-save")
    await page.locator("#edit-project-result .error", has_text="capacity").wait_for(timeout=10_000)
    async with page.expect_navigation():
        await page.click("#generate-shifts")

    page.on("dialog", lambda dialog: dialog.accept())
    await page.fill("#beneficiary-name", "张小明")
    await page.fill("#beneficiary-phone", "1380013")  # not a mobile number: refused, naming the field
    await page.click("#add-beneficiary button.primary")
    await page.locator("#beneficiary-result .error", has_text="guardian_phone").wait_for(timeout=10_000)
    await page.fill("#beneficiary-phone", "13800138000")
    await page.fill("#beneficiary-note", "放学后需送到外婆家")
    async with page.expect_navigation():
        await page.click("#add-beneficiary button.primary")
    row = await page.inner_text("#beneficiaries tbody tr")
    assert "张小明" not in row and "13800138000" not in row and "放学后需送到外婆家" in row  # masked on screen
    assert await _serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "project-beneficiaries.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#beneficiaries tbody tr button")
    assert await page.locator("#beneficiaries-empty").count() == 1
    async with platform.client() as client:
        stored = expect(await client.get(f"/api/v1/projects/{project_id}", headers=bearer(built.town_admin_token)), 200)
        assert (stored["capacity"], stored["horizon_days"], stored["org_path"]) == (3, 10, built.station["path"])
    assert outside == []


async def _redeem_and_decide_on_the_rewards_page(platform, page: Page, built, crew, shots) -> None:
    """The approved hours' points buy a benefit; the town admin declines one redemption (refunded once) and hands the other over."""
    gateway = platform.gateway_url
    producer = make_producer(platform.stack.bootstrap_servers)  # two recorded hours each, as dispatch announces them
    await producer.start()
    try:
        for volunteer in crew:
            fact = ServiceHoursRecorded(
                record_id=f"console-{uuid.uuid4()}", assignment_id=f"console-{uuid.uuid4()}", volunteer_id=volunteer.volunteer_id,
                operation_id="console", post_id="console", hours=2, difficulty=1, started_at=datetime.now(UTC) - timedelta(hours=2),
                ended_at=datetime.now(UTC))
            event = new_event(source=fact.SOURCE, type=fact.TYPE, subject=volunteer.volunteer_id, data=fact.model_dump(mode="json"))
            await producer.send_and_wait(f"{platform.prefix}{fact.TOPIC}", event.to_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()
    async with platform.client() as client:
        async def earned():
            held = [expect(await client.get("/api/v1/balances/me", headers=bearer(v.token)), 200)["points"] for v in crew]
            return held if all(p >= 20 for p in held) else None

        before = await eventually(earned, timeout_s=30, message="points for the approved hours")
        ops = bearer(platform.stack.token(Role.OPERATOR, sub="console-benefits"))
        benefit = expect(await client.post("/api/v1/benefits", headers=ops, json={
            "name": f"公交卡充值（{uuid.uuid4().hex[:8]}）", "cost_points": 1, "stock": 10}), 201)
        made = [expect(await client.post("/api/v1/redemptions", headers=bearer(v.token), json={"benefit_id": benefit["benefit_id"]}), 201)
                for v in crew]
    declined, handed = made
    await page.goto(f"{gateway}/console/rewards")
    rows = page.locator("#redemptions tbody tr", has_text=benefit["name"])
    assert await rows.count() == 2 and await page.input_value("#redemption_status") == "requested"
    shown = await rows.first.inner_text()  # the volunteer's station by its name, not the ids of its path
    assert built.station["name"] in shown and built.station["id"] not in shown
    await page.select_option("#org_path", built.station["path"])  # the desk of one station, picked by name
    async with page.expect_navigation():
        await page.click("#desk-filters button[type=submit]")
    assert await page.input_value("#org_path") == built.station["path"] and await rows.count() == 2
    assert await _serious_accessibility_problems(page) == []
    await page.check(f"#redemption-{declined['redemption_id']}")
    await page.click("#redemptions-decline")  # no reason: refused in words, nothing refunded
    await page.locator("#redemptions-result", has_text="原因").wait_for(timeout=10_000)
    await page.fill("#redemptions-reason", "本站暂停发放公交卡")
    await page.screenshot(path=shots / "rewards-redemptions.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#redemptions-decline")
    await page.check(f"#redemption-{handed['redemption_id']}")
    async with page.expect_navigation():
        await page.click("#redemptions-handover")
    assert await page.locator("#redemptions tbody tr", has_text=benefit["name"]).count() == 0  # none left to hand over

    await page.goto(f"{gateway}/console/rewards?redemption_status=declined")  # the filter stays in the URL
    assert await page.input_value("#redemption_status") == "declined"
    assert "本站暂停发放公交卡" in await page.locator("#redemptions tbody tr", has_text=benefit["name"]).inner_text()
    link = await page.get_attribute("#redemptions-csv", "href")
    assert link == "/console/export/redemptions.csv?redemption_status=declined"
    exported = list(csv.reader(io.StringIO((await (await page.request.get(f"{gateway}{link}")).body()).decode("utf-8-sig"))))
    ours = [r for r in exported[1:] if r[3] == benefit["name"]][0]
    assert exported[0][0] == "申请时间" and ours[6] == "已拒绝（积分已退回）" and ours[2].startswith(built.station["name"])
    pending_csv = await page.request.get(f"{gateway}/console/export/pending-rewards.csv")
    assert pending_csv.status == 200 and pending_csv.headers["content-type"].startswith("text/csv")
    async with platform.client() as client:
        after = [expect(await client.get("/api/v1/balances/me", headers=bearer(v.token)), 200)["points"] for v in crew]
    assert after == [before[0], before[1] - 1]  # the declined one refunded exactly once, the handed-over one spent
