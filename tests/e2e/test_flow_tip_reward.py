"""Flow 1 through the gateway only: a tip triggers reward scoring; one case pays one reward, to the first reporter."""

from __future__ import annotations

import asyncio
import uuid

from shouwang_dev.testing import eventually

from tests.e2e.journey import (
    bearer,
    build_county,
    case_of_tip,
    confirm_police_answers,
    expect,
    forward_case,
    ledger_entries,
    police_answer,
    police_answers,
    register_volunteer,
    verify_case,
)

FRAUD_TEXT = "城关镇东门菜市场旁有人冒充银行客服，让老人把养老钱转到安全账户，已有三位老人被骗"
FRAUD_TEXT_AGAIN = "东门菜市场边上有人冒充银行客服骗老人转账到所谓安全账户，好几个老人上当了"


async def test_tip_to_reward_and_one_case_one_reward(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        first = await register_volunteer(client, county)
        second = await register_volunteer(client, county)

        tip = expect(await client.post("/api/v1/tips", headers=bearer(first.token), json={
            "category": "fraud", "text": FRAUD_TEXT, "lat": 30.2501, "lon": 120.1702,
            "idempotency_key": f"phone-{uuid.uuid4()}"}), 202)

        async def reporting_points():
            entries = await ledger_entries(client, first.token)
            return [e for e in entries if e.get("amount", 0) > 0] or None

        credited = await eventually(reporting_points, timeout_s=30, message="reporting points in the reporter's ledger")
        assert credited[0]["unit"] == "points"

        async def pushed():
            page = expect(await client.get("/api/v1/notifications", headers=bearer(first.token)), 200)
            return [n for n in page["items"] if n["kind"].startswith("ledger")] or None

        await eventually(pushed, timeout_s=20, message="a ledger notification for the reporter")

        second_tip = expect(await client.post("/api/v1/tips", headers=bearer(second.token), json={
            "category": "fraud", "text": FRAUD_TEXT_AGAIN, "lat": 30.2503, "lon": 120.1699,
            "idempotency_key": f"phone-{uuid.uuid4()}"}), 202)

        analyst = bearer(county.analyst_token)

        async def one_case():
            cases = expect(await client.get("/api/v1/cases", headers=analyst), 200)
            items = cases["items"] if isinstance(cases, dict) else cases
            for case in items:
                detail = expect(await client.get(f"/api/v1/cases/{case['case_id'] if 'case_id' in case else case['id']}", headers=analyst), 200)
                tip_ids = {t["tip_id"] for t in detail.get("tips", [])}
                if {tip["tip_id"], second_tip["tip_id"]} <= tip_ids:
                    return detail
            return None

        case = await eventually(one_case, timeout_s=20, message="both tips in one case")
        assert case["first_tip_id"] == tip["tip_id"]
        case_id = case.get("case_id") or case["id"]
        await forward_case(client, county.analyst_token, case_id, summary="冒充银行客服诈骗老人")

        await police_answer(platform, "arrest", group=f"police-{uuid.uuid4().hex[:6]}")

        async def case_reward(token):
            return [e for e in await ledger_entries(client, token) if e.get("rule_line", "").startswith("case.reward")
                    or "一案一奖" in e.get("reason", "")]

        received = await police_answers(client, county.analyst_token, case_id)
        assert [(a["disposition"], a["confirmed"]) for a in received] == [("arrest", False)]
        await asyncio.sleep(5)
        assert await case_reward(first.token) == [], "a police answer pays nothing before an analyst confirms it"

        await confirm_police_answers(client, county.analyst_token, case_id, received)
        paid = await eventually(lambda: case_reward(first.token), timeout_s=40, message="the case reward to the first reporter")
        assert len(paid) == 1
        await police_answer(platform, "arrest", group=f"police-{uuid.uuid4().hex[:6]}")  # a police system replays its answer
        await police_answer(platform, "case_solved", group=f"police-{uuid.uuid4().hex[:6]}")  # and later reports it solved
        await confirm_police_answers(client, county.analyst_token, case_id, await police_answers(client, county.analyst_token, case_id, count=3))
        await asyncio.sleep(3)
        assert len(await case_reward(first.token)) == 1, "one case, one reward"
        assert await case_reward(second.token) == [], "only the first reporter is paid"


async def test_anonymous_tip_reward_is_claimable_only_with_its_receipt_secret(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        citizen_turned_volunteer = await register_volunteer(client, county)
        receipt = expect(await client.post("/api/v1/tips", json={
            "category": "drugs", "text": "城南汽车站后面的出租屋夜里常有陌生人进出，闻到刺鼻气味，怀疑有人制毒",
            "lat": 30.2421, "lon": 120.1655, "channel": "web", "idempotency_key": f"web-{uuid.uuid4()}"}), 202)
        code, secret = receipt["receipt_code"], receipt["receipt_secret"]
        assert code and secret and "volunteer_id" not in receipt

        wrong = await client.post(f"/api/v1/receipts/{code}/reward-claim", headers={"X-Receipt-Secret": secret[::-1]},
                                  json={"payout_target": "支付宝 张先生"})
        unknown = await client.post("/api/v1/receipts/SW-NOPE-0000/reward-claim", headers={"X-Receipt-Secret": secret},
                                    json={"payout_target": "支付宝 张先生"})
        assert wrong.status_code == unknown.status_code == 404 and wrong.json() == unknown.json()

        async def claim():
            return await client.post(f"/api/v1/receipts/{code}/reward-claim", headers={
                "X-Receipt-Secret": secret, **bearer(citizen_turned_volunteer.token)})

        early = await claim()  # tip points are pending until an analyst reviews the tip: nothing to take yet
        assert early.status_code == 404 or early.json()["points"] == 0, early.text
        case_id = await eventually(lambda: case_of_tip(client, county.analyst_token, receipt["tip_id"]), timeout_s=20,
                                   message="the anonymous tip's case")
        await verify_case(client, county.analyst_token, case_id)

        async def claimed():
            resp = await claim()
            return resp.json() if resp.status_code == 201 and resp.json()["points"] > 0 else None

        paid = await eventually(claimed, timeout_s=30, message="the held reward paid to the claimant")
        assert paid["points"] > 0
        again = await client.post(f"/api/v1/receipts/{code}/reward-claim", headers={"X-Receipt-Secret": secret},
                                  json={"payout_target": "支付宝 张先生"})
        assert again.status_code == 201 and again.json()["points"] == 0, "a held reward is paid once"
        entries = await ledger_entries(client, citizen_turned_volunteer.token)
        assert any(e["amount"] > 0 for e in entries)
