"""An urgent case reaches the analyst on duty for its scope through the real platform: intel's roster, the alert on
intel.cases.v1, and the gateway's feed of that staff member."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt

from shouwang_dev.testing import eventually

from tests.e2e.journey import bearer, build_county, expect


async def test_an_urgent_tip_reaches_the_on_duty_analysts_feed_and_no_one_elses(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        analyst_sub = jwt.decode(county.analyst_token, options={"verify_signature": False})["sub"]
        now = datetime.now(UTC)
        shift = {"staff_sub": analyst_sub, "org_path": county.town["path"], "starts_at": (now - timedelta(minutes=5)).isoformat(),
                 "ends_at": (now + timedelta(hours=8)).isoformat()}
        expect(await client.post("/api/v1/duty-roster", headers=bearer(county.town_admin_token), json=shift), 201)
        assert (await client.post("/api/v1/duty-roster", headers=bearer(county.analyst_token), json=shift)).status_code == 403
        on_duty = expect(await client.get("/api/v1/duty-roster", headers=bearer(county.analyst_token)), 200)
        assert [s["staff_sub"] for s in on_duty if s["org_path"] == county.town["path"]] == [analyst_sub]

        tip = expect(await client.post("/api/v1/tips", json={
            "category": "missing_person", "text": f"七岁小孩在东门水库边走失，穿红色上衣，家人正在找 {uuid.uuid4().hex[:8]}",
            "org_path": county.station["path"], "lat": 30.5301, "lon": 120.5302}), 202)  # far from other tests' tips: a case of its own

        async def alerted():
            items = expect(await client.get("/api/v1/notifications", headers=bearer(county.analyst_token)), 200)["items"]
            return [i for i in items if i["kind"] == "urgent_case_alert"] or None

        (alert,) = await eventually(alerted, timeout_s=45, message="the urgent-case alert in the on-duty analyst's feed")
        assert alert["data"]["case_org_path"] == county.station["path"] and alert["data"]["alerted_org_path"] == county.town["path"]
        assert alert["data"]["level"] == 1 and not alert["data"]["escalated"]
        assert tip["tip_id"] not in str(alert) and "小孩" not in str(alert["data"])  # no tip text travels in a push
        others = expect(await client.get("/api/v1/notifications", headers=bearer(county.town_admin_token)), 200)["items"]
        assert [i for i in others if i["kind"] == "urgent_case_alert"] == []
