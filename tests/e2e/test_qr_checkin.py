"""QR check-in through the gateway: the station's admin prints the post's QR, volunteers' phones scan it and check in;
a station admin of another town cannot get it. A check-in far from the post is flagged. No hours reach rewards
before the station admin decides (HOURS_APPROVAL=all): the approved ones then bring hours and points, the declined
ones stay with their reason and bring nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shouwang_dev.testing import eventually

from tests.dispatch.test_checkin_qr import decode_png
from tests.e2e.journey import (
    approve_hours,
    bearer,
    build_county,
    expect,
    hours_banked,
    hours_written,
    register_volunteer,
    wait_until_known_to_dispatch,
)

POST_LAT, POST_LON = 30.3100, 120.2400


async def test_the_station_prints_the_qr_a_far_check_in_is_flagged_and_hours_reach_the_bank_only_when_approved(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        other = await build_county(platform, client)  # another town, with its own station admin
        crew = [await register_volunteer(client, county, lat=POST_LAT + 0.0005 * (i + 1), lon=POST_LON) for i in range(2)]
        await wait_until_known_to_dispatch(platform, [v.volunteer_id for v in crew])

        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        op = expect(await client.post("/api/v1/operations", headers=bearer(county.town_admin_token), json={
            "name": "东门社区夜巡", "org_path": county.town["path"], "posts": [{
                "name": "东门社区广场", "lat": POST_LAT, "lon": POST_LON, "org_path": county.station["path"],
                "shift_start": start.isoformat(), "shift_end": (start + timedelta(hours=2)).isoformat(), "headcount": 2}]}), 201)
        expect(await client.post(f"/api/v1/operations/{op['id']}/activate", headers=bearer(county.town_admin_token)), 202)

        async def offered(volunteer):
            body = expect(await client.get("/api/v1/assignments/mine", headers=bearer(volunteer.token)), 200)
            mine = [a for a in (body["items"] if isinstance(body, dict) else body) if a["operation_id"] == op["id"]]
            return mine[0] if mine else None

        near, far = crew
        shifts = {v.volunteer_id: await eventually(lambda v=v: offered(v), timeout_s=30, message="an offer for each volunteer") for v in crew}
        post_id = shifts[near.volunteer_id]["post_id"]
        qr = f"/api/v1/operations/{op['id']}/posts/{post_id}/checkin-qr.png?mode=shift"
        denied = await client.get(qr, headers=bearer(other.station_admin_token))
        assert denied.status_code == 403, denied.text
        assert (await client.get(qr, headers=bearer(near.token))).status_code == 403
        printed = await client.get(qr, headers=bearer(county.station_admin_token))
        assert printed.status_code == 200 and printed.headers["content-type"] == "image/png", printed.text
        scanned = decode_png(printed.content)

        outcomes = {}
        for volunteer, lat in ((near, POST_LAT + 0.0003), (far, POST_LAT + 0.03)):  # the second phone is 3 km away
            shift = shifts[volunteer.volunteer_id]
            expect(await client.post(f"/api/v1/assignments/{shift['id']}/accept", headers=bearer(volunteer.token)), 200)
            arrived = expect(await client.post(f"/api/v1/assignments/{shift['id']}/check-in", headers=bearer(volunteer.token),
                                               json={"qr_token": scanned, "lat": lat, "lon": POST_LON}), 200)
            outcomes[volunteer.volunteer_id] = (arrived["status"], arrived["review_reason"])
        assert outcomes == {near.volunteer_id: ("checked_in", None), far.volunteer_id: ("checked_in", "far_from_post")}

        await asyncio.sleep(25)  # hours are rounded to the hundredth: 25 s (0.007 h) are 0.01 h
        left = {v.volunteer_id: expect(await client.post(f"/api/v1/assignments/{shifts[v.volunteer_id]['id']}/check-out",
                                                         headers=bearer(v.token)), 200) for v in crew}
        assert [left[v.volunteer_id]["hours_status"] for v in crew] == ["pending", "pending"]  # clean or flagged, both wait
        assert await hours_written(platform, [v.volunteer_id for v in crew]) == 0  # the check-outs wrote no hours for rewards

        async def banked(volunteer):
            return await hours_banked(client, volunteer.token)

        station = bearer(county.station_admin_token)
        pending = expect(await client.get("/api/v1/hours/pending", headers=station), 200)
        assert sorted((h["assignment_id"], h["review_reason"] or "") for h in pending) == sorted(
            [(shifts[near.volunteer_id]["id"], ""), (shifts[far.volunteer_id]["id"], "far_from_post")])
        assert expect(await client.get("/api/v1/hours/pending", headers=bearer(other.station_admin_token)), 200) == []
        assert await banked(near) is None and await banked(far) is None  # pending: nothing reached rewards

        approved = await approve_hours(client, county.station_admin_token, [shifts[near.volunteer_id]["id"]])
        assert approved["decided"] == [shifts[near.volunteer_id]["id"]]
        declined = expect(await client.post("/api/v1/hours/decline", headers=station,
                                            json={"assignment_ids": [shifts[far.volunteer_id]["id"]], "reason": "定位在三公里外"}), 200)
        assert declined["decided"] == [shifts[far.volunteer_id]["id"]]
        credited = await eventually(lambda: banked(near), timeout_s=30, message="the approved hours and their points in the bank")
        units = {e["unit"]: float(e["amount"]) for e in credited}
        assert units["hours"] == pytest.approx(left[near.volunteer_id]["hours"], abs=1e-6) and units["hours"] > 0 and units["points"] > 0
        assert await hours_written(platform, [near.volunteer_id, far.volunteer_id]) == 1  # the approved ones only
        mine = expect(await client.get(f"/api/v1/assignments/{shifts[far.volunteer_id]['id']}", headers=bearer(far.token)), 200)
        assert (mine["hours_status"], mine["hours_decline_reason"], mine["hours"] > 0) == ("declined", "定位在三公里外", True)
        assert await banked(far) is None  # declined: kept in dispatch with the reason, never credited
