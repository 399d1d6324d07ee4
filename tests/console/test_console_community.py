"""The ops console's community, training and service-project pages in a real headless Chromium."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.console.pages import POST_LAT, POST_LON, open_page, serious_accessibility_problems, sign_in
from tests.e2e.journey import bearer, expect


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

    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["county_admin"])
    await page.goto(f"{gateway}/console/community")
    row = page.locator("#needs tbody tr", has_text=need_text)
    await row.locator("select").select_option("in_progress")
    async with page.expect_navigation():
        await row.locator("button:has-text('更新')").click()
    assert "处理中" in await page.locator("#needs tbody tr", has_text=need_text).inner_text()
    assert await serious_accessibility_problems(page) == []
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
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "dispute.png", full_page=True)
    async with page.expect_navigation():
        await page.click("button:has-text('结案')")
    assert "已结案" in await page.inner_text(".meta")
    assert outside == []


async def test_a_county_admin_registers_a_training_and_sees_who_is_behind(platform, browser, county, shots):
    gateway = platform.gateway_url
    title = f"平安志愿者职业道德培训（{uuid.uuid4().hex[:8]}）"
    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["county_admin"])
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
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "training.png", full_page=True)

    await page.goto(f"{gateway}/console/rewards?period=2026&unit=hours")  # the period and basis stay in the URL
    assert await page.input_value("#period") == "2026" and await page.input_value("#unit") == "hours"
    assert "2026 服务时长排行" in await page.inner_text("#board-title")
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "rewards.png", full_page=True)
    volunteer = county["crew"][0]
    await page.goto(f"{gateway}/console/volunteers/{volunteer.volunteer_id}")
    assert float(await page.inner_text("#points")) >= 0 and float(await page.inner_text("#hours")) >= 0  # rewards' record, staff view
    assert outside == []


async def test_a_town_admin_marks_a_training_attended_in_bulk_and_sees_who_is_behind_per_unit(platform, browser, county, shots):
    built, gateway = county["built"], platform.gateway_url
    title = f"镇级业务技能培训（{uuid.uuid4().hex[:8]}）"
    async with platform.client() as client:
        held = expect(await client.post("/api/v1/training/sessions", headers=bearer(built.town_admin_token), json={
            "title": title, "level": "town", "topic": "skills", "org_unit_id": built.town["id"],
            "held_on": datetime.now(UTC).date().isoformat()}), 201)

    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["town_admin"])
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
    assert await serious_accessibility_problems(page) == []
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

    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/projects?kind=school_patrol")  # the filter in the address
    assert await page.input_value("#kind") == "school_patrol"
    await page.locator("#projects tbody tr", has_text=name).locator("a").click()
    assert page.url.endswith(f"/console/projects/{project['id']}")
    assert await page.locator("#shifts tbody tr").count() == len(shifts)
    first_row = page.locator("#shifts tbody tr").first
    assert "1 / 2" in await first_row.inner_text() and "实验小学东门" in await first_row.inner_text()
    assert await page.locator("#signups tbody tr", has_text="已确认").count() == 1
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "project.png", full_page=True)

    await first_row.locator("a:has-text('打印二维码')").click()
    assert page.url.endswith(f"/console/projects/{project['id']}/shifts/{first['id']}/qr")
    assert await page.locator("#shift-qr svg").count() == 1
    assert "实验小学东门" in await page.inner_text("#qr-shift")
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "shift-qr.png", full_page=True)

    stranger, _ = await open_page(browser, gateway)  # a station admin of the same station may print; an analyst has no projects
    await sign_in(stranger, gateway, county["logins"]["analyst"])
    await stranger.goto(f"{gateway}/console/projects/{project['id']}/shifts/{first['id']}/qr")
    assert await stranger.locator("#shift-qr").count() == 0 and await stranger.locator(".error").count() == 1
    assert outside == []


async def test_a_town_admin_creates_and_edits_a_service_project_and_generates_its_shifts(platform, browser, county, shots):
    built, gateway = county["built"], platform.gateway_url
    tomorrow = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).date()
    name = f"社区关爱走访（{uuid.uuid4().hex[:8]}）"
    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/projects")
    assert await serious_accessibility_problems(page) == []

    await page.select_option("#project-kind", "care")
    await page.fill("#project-name", name)
    await page.select_option("#project-org", built.station["path"])  # the station picked by its name
    await page.fill("#place-name", "幸福里社区活动室")
    await page.fill("#place-lat", str(POST_LAT + 0.05))
    await page.fill("#place-lon", str(POST_LON))
    await page.fill("#project-capacity", "0")  # refused by dispatch, naming the field; the form keeps what was typed
    await page.fill("#project-rrule", "FREQ=DAILY")
    await page.fill("#project-starts-on", tomorrow.isoformat())
    await page.fill("#project-start-time", "09:00")
    await page.fill("#project-ends-before", (tomorrow + timedelta(days=3)).isoformat())
    await page.click("#create-project button.primary")
    refusal = await page.inner_text("#create-project-error")  # the form's own label and the bound, in Chinese
    assert refusal.startswith("每班人数：") and "应" in refusal and "capacity" not in refusal, refusal
    assert await page.get_attribute("#project-capacity", "aria-invalid") == "true"
    assert await page.get_attribute("#project-name", "aria-invalid") is None
    assert await page.input_value("#project-name") == name and await page.input_value("#project-org") == built.station["path"]
    assert await serious_accessibility_problems(page) == []
    await page.locator("#create-project").locator("xpath=..").screenshot(path=shots / "project-refused.png")  # the form's card
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
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "project-beneficiaries.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#beneficiaries tbody tr button")
    assert await page.locator("#beneficiaries-empty").count() == 1
    async with platform.client() as client:
        stored = expect(await client.get(f"/api/v1/projects/{project_id}", headers=bearer(built.town_admin_token)), 200)
        assert (stored["capacity"], stored["horizon_days"], stored["org_path"]) == (3, 10, built.station["path"])
    assert outside == []
