"""The ops console's operation pages in a real headless Chromium: planning, the live board, offers, hours and what
they buy, the county report, and who may see which."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Page

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import ServiceHoursRecorded
from shouwang_shared.envelope import new_event
from shouwang_shared.kafka import make_producer

from tests.console.pages import PASSWORD, POST_LAT, POST_LON, open_page, serious_accessibility_problems, sign_in
from tests.e2e.journey import bearer, build_county, expect, register_volunteer, wait_until_known_to_dispatch


async def test_a_town_admin_runs_an_operation_from_the_console_and_sees_the_board_live(platform, browser, county, shots):
    gateway = platform.gateway_url
    page, outside = await open_page(browser, gateway)
    page.on("dialog", lambda dialog: dialog.accept())

    await page.goto(f"{gateway}/console/")
    assert page.url.endswith("/console/login")
    await sign_in(page, gateway, county["logins"]["town_admin"], "错误的口令")
    assert await page.inner_text("#login-error") == "用户名或密码错误"
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "login.png")

    await sign_in(page, gateway, county["logins"]["town_admin"])
    assert page.url.endswith("/console/operations")
    await page.fill("#name", "元宵灯会安保（控制台）")
    await page.fill("#respond_within_minutes", "0")  # refused: said with the form's label, the input marked, the rest kept
    await page.click("form[action='/console/operations'] button.primary")
    assert (await page.inner_text("#create-error")).startswith("响应时限：应不小于 1")
    assert await page.get_attribute("#respond_within_minutes", "aria-invalid") == "true" and await page.input_value("#name") == "元宵灯会安保（控制台）"
    assert await page.input_value("#org_path") == "" and await serious_accessibility_problems(page) == []  # 本人辖区 by default
    await page.fill("#respond_within_minutes", "120")
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
    assert await serious_accessibility_problems(page) == []
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
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "operation-board.png", full_page=True)

    await page.goto(f"{gateway}/console/operations")
    assert "元宵灯会安保（控制台）" in await page.inner_text("table")
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "operations.png", full_page=True)

    forged = await page.request.post(f"{gateway}/console/operations", form={"name": "没有 CSRF 令牌"})
    assert forged.status == 403 and (await forged.json())["detail"]["field"] == "csrf_token"
    assert outside == []


async def test_a_role_without_operations_rights_is_refused_in_the_console_as_in_the_api(platform, browser, county):
    gateway = platform.gateway_url
    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["analyst"])
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

    page, outside = await open_page(browser, gateway)
    for path in ("/console/operations", "/console/triage", "/console/volunteers", f"/console/volunteers/{stranger.volunteer_id}",
                 "/console/hierarchy"):  # nobody signed in: every page sends them to sign in
        await page.goto(f"{gateway}{path}")
        assert page.url.endswith("/console/login"), path
    await sign_in(page, gateway, stranger.phone)  # a volunteer has no console account: their phone is no username
    assert "/console/login" in page.url and await page.locator(".error").count()

    await sign_in(page, gateway, username)
    await page.goto(f"{gateway}/console/hierarchy")
    assert own["name"] in await page.inner_text(".crumbs")  # their tree starts at their station
    await page.goto(f"{gateway}/console/volunteers")
    assert stranger.phone[-4:] not in await page.inner_text("main")
    for path in (f"/console/hierarchy?unit={other.station['id']}", f"/console/volunteers?unit={other.station['id']}",
                 f"/console/volunteers/{stranger.volunteer_id}"):  # another station's pages, typed into the address bar
        await page.goto(f"{gateway}{path}")
        assert await page.locator(".error").count(), path
        assert stranger.phone[-4:] not in await page.inner_text("main"), path
    assert await serious_accessibility_problems(page) == []
    assert outside == []


async def test_the_county_report_shows_the_reports_figures_and_downloads_them_as_csv(platform, browser, county, shots):
    gateway = platform.gateway_url
    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["county_admin"])
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
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "report.png", full_page=True)

    async with page.expect_download() as download_info:
        await page.click("#report-csv")
    download = await download_info.value
    text = Path(await download.path()).read_text(encoding="utf-8-sig")
    assert text.startswith("section,measure,key,value") and "\ntips,taken_in,," in text

    await page.click("#report-operations tbody tr a")
    assert "/console/reports/operations/" in page.url
    assert int(await page.inner_text("#op-dispatched")) >= 1
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "report-operation.png", full_page=True)

    town_page, _ = await open_page(browser, gateway)  # a town admin's report is their town's; another unit's is refused in words
    await sign_in(town_page, gateway, county["logins"]["town_admin"])
    await town_page.goto(f"{gateway}/console/reports?{period}")
    assert county["built"].town["path"] in await town_page.inner_text("#report-scope")
    await town_page.goto(f"{gateway}/console/reports?unit={county['built'].county['id']}&{period}")
    assert "管辖范围" in await town_page.inner_text("[role=alert]")
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

    page, outside = await open_page(browser, gateway)
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/operations/{op['id']}?offer_status=offered")
    assert await page.locator("#offers tbody tr").count() == 2
    assert await page.input_value("#offer_status") == "offered"  # the filter stays in the URL
    assert await serious_accessibility_problems(page) == []
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
    assert await serious_accessibility_problems(page) == []

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
    assert await serious_accessibility_problems(page) == []
    await page.screenshot(path=shots / "operation-offers-last-page.png", full_page=True)
    async with page.expect_navigation():
        await page.click("#offers-prev")
    assert await page.locator("#offers tbody tr").count() == 2
    await page.goto(f"{gateway}/console/operations/{op['id']}?offset=30")  # past the end: said, with the way back
    await page.locator("#offers-first").wait_for(timeout=10_000)
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

    page, outside = await open_page(browser, gateway)
    await sign_in(page, gateway, county["logins"]["town_admin"])
    await page.goto(f"{gateway}/console/hours")
    rows = page.locator("#pending-hours tbody tr", has_text="夜市北口")  # the clean check-out waits too (HOURS_APPROVAL=all)
    assert sorted([(await rows.nth(i).locator("td").last.inner_text()).strip() for i in range(await rows.count())]) == ["无", "签到位置离岗位较远"]
    assert await serious_accessibility_problems(page) == []
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
    assert await serious_accessibility_problems(page) == []
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
