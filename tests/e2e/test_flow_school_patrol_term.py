"""Attendance at a weekly 护学 series through the gateway: sign-ups with a waitlist promoted by a cancellation, the
station's printed QR of the school gate scanned to check in, a far-away check-in flagged, and hours reaching the
alliance bank only when approved: clean or flagged, both wait (HOURS_APPROVAL=all) for the station admin's bulk approval."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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

GATE_LAT, GATE_LON = 30.3200, 120.2500
COUNTY_TZ = ZoneInfo("Asia/Shanghai")


async def test_a_weekly_school_patrol_checks_in_by_qr_and_its_hours_wait_for_bulk_approval(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        other = await build_county(platform, client)
        near, leaver, far = [await register_volunteer(client, county, lat=GATE_LAT + 0.001 * (i + 1), lon=GATE_LON) for i in range(3)]
        await wait_until_known_to_dispatch(platform, [v.volunteer_id for v in (near, leaver, far)])

        # Today's shift starts in half a minute (sign-ups close at the start; check-in opens an hour before).
        start = (datetime.now(COUNTY_TZ) + timedelta(seconds=30)).replace(microsecond=0)
        today, holiday = start.date(), start.date() + timedelta(days=7)
        body = {"kind": "school_patrol", "name": "实验小学护学岗", "org_path": county.station["path"], "capacity": 2, "shift_minutes": 120,
                "places": [{"name": "实验小学东门", "lat": GATE_LAT, "lon": GATE_LON}, {"name": "实验小学西门", "lat": GATE_LAT, "lon": GATE_LON - 0.004}],
                "schedule": {"rrule": f"FREQ=WEEKLY;BYDAY={'MO TU WE TH FR SA SU'.split()[today.weekday()]}", "starts_on": today.isoformat(),
                             "start_time": start.strftime("%H:%M:%S"), "ends_before": (today + timedelta(weeks=18)).isoformat()},
                "exdates": [holiday.isoformat()]}
        project = expect(await client.post("/api/v1/projects", json=body, headers=bearer(county.town_admin_token)), 201)
        shifts = expect(await client.get(f"/api/v1/projects/{project['id']}/shifts", headers=bearer(county.town_admin_token)), 200)
        days = sorted({datetime.fromisoformat(s["starts_at"]).astimezone(COUNTY_TZ).date() for s in shifts})
        assert days[0] == today and holiday not in days and today + timedelta(days=14) in days  # the holiday week is left out
        east, west = (next(s for s in shifts if s["place"]["name"] == gate and s["starts_at"] == min(x["starts_at"] for x in shifts))
                      for gate in ("实验小学东门", "实验小学西门"))

        signed = [expect(await client.post(f"/api/v1/shifts/{east['id']}/signup", headers=bearer(v.token)), 201)["status"]
                  for v in (near, leaver, far)]
        assert signed == ["confirmed", "confirmed", "waitlisted"]
        expect(await client.post(f"/api/v1/shifts/{east['id']}/cancel", json={"reason": "家中有事"}, headers=bearer(leaver.token)), 200)
        mine = expect(await client.get("/api/v1/shifts/mine", headers=bearer(far.token)), 200)
        assert [(m["shift_id"], m["status"]) for m in mine if m["shift_id"] == east["id"]] == [(east["id"], "confirmed")]  # promoted

        qr = f"/api/v1/projects/{project['id']}/shifts/{east['id']}/checkin-qr.png?mode=shift"
        assert (await client.get(qr, headers=bearer(other.station_admin_token))).status_code == 403  # another town's station
        assert (await client.get(qr, headers=bearer(near.token))).status_code == 403
        printed = await client.get(qr, headers=bearer(county.station_admin_token))
        assert printed.status_code == 200 and printed.headers["content-type"] == "image/png", printed.text
        scanned = decode_png(printed.content)
        west_token = expect(await client.get(f"/api/v1/projects/{project['id']}/shifts/{west['id']}/checkin-token?mode=shift",
                                             headers=bearer(county.station_admin_token)), 200)["token"]

        check_in = f"/api/v1/shifts/{east['id']}/check-in"
        wrong_gate = await client.post(check_in, headers=bearer(near.token), json={"qr_token": west_token})
        assert wrong_gate.status_code == 422 and "qr_token" in wrong_gate.text, wrong_gate.text
        cancelled = await client.post(check_in, headers=bearer(leaver.token), json={"qr_token": scanned})
        assert cancelled.status_code == 409 and "status" in cancelled.text, cancelled.text
        arrived = {}
        for volunteer, lat in ((near, GATE_LAT + 0.0003), (far, GATE_LAT + 0.03)):  # the second phone is 3 km away
            arrived[volunteer.volunteer_id] = expect(await client.post(check_in, headers=bearer(volunteer.token),
                                                          json={"qr_token": scanned, "lat": lat, "lon": GATE_LON}), 200)
        assert [(a["checked_in_at"] is not None, a["review_reason"]) for a in arrived.values()] == [(True, None), (True, "far_from_post")]
        again = expect(await client.post(check_in, headers=bearer(near.token), json={"qr_token": scanned}), 200)
        assert again["checked_in_at"] == arrived[near.volunteer_id]["checked_in_at"]  # a retry answers the same

        await asyncio.sleep(max(0.0, (start - datetime.now(COUNTY_TZ)).total_seconds()) + 25)  # 25 s of the shift: hours are rounded to the hundredth, 0.01 h
        left = {v.volunteer_id: expect(await client.post(f"/api/v1/shifts/{east['id']}/check-out", headers=bearer(v.token)), 200) for v in (near, far)}
        assert [left[v.volunteer_id]["hours_status"] for v in (near, far)] == ["pending", "pending"]
        assert all(left[v.volunteer_id]["hours"] > 0 for v in (near, far))
        assert await hours_written(platform, [near.volunteer_id, far.volunteer_id]) == 0  # nothing written for rewards yet

        async def banked(volunteer):
            return await hours_banked(client, volunteer.token)

        station = bearer(county.station_admin_token)
        pending = expect(await client.get("/api/v1/hours/pending", headers=station), 200)
        assert sorted((h["kind"], h["assignment_id"], h["operation_id"], h["post_id"], h["review_reason"] or "") for h in pending) == sorted([
            ("shift", left[near.volunteer_id]["id"], project["id"], east["id"], ""),
            ("shift", left[far.volunteer_id]["id"], project["id"], east["id"], "far_from_post")])
        assert expect(await client.get("/api/v1/hours/pending", headers=bearer(other.station_admin_token)), 200) == []
        refused = await client.post("/api/v1/hours/approve", headers=bearer(other.station_admin_token),
                                    json={"assignment_ids": [left[far.volunteer_id]["id"]]})
        assert refused.status_code == 403, refused.text
        assert await banked(near) is None and await banked(far) is None  # pending: nothing reached rewards

        approved = await approve_hours(client, county.station_admin_token, [h["assignment_id"] for h in pending])  # in bulk
        assert sorted(approved["decided"]) == sorted(left[v.volunteer_id]["id"] for v in (near, far))
        for volunteer in (near, far):
            credited = await eventually(lambda v=volunteer: banked(v), timeout_s=30, message="the approved hours and points in the bank")
            units = {e["unit"]: float(e["amount"]) for e in credited}
            assert units["hours"] == pytest.approx(left[volunteer.volunteer_id]["hours"], abs=1e-6) and units["points"] > 0
            assert len(credited) == 2  # once each: hours and their points
        assert await hours_written(platform, [near.volunteer_id, far.volunteer_id]) == 2

        # The national service record of each approved shift names the project, its gate and its organiser (#21).
        async def recorded():
            answer = expect(await client.get("/api/v1/reports/service-records", headers=bearer(county.station_admin_token),
                                             params={"from": today.isoformat(), "to": today.isoformat()}), 200)
            mine = [r for r in answer["items"] if r["volunteer_id"] in (near.volunteer_id, far.volunteer_id)]
            return mine if len(mine) == 2 else None

        for record in await eventually(recorded, timeout_s=30, message="the shifts' national service records"):
            assert (record["project"], record["place"], record["organiser"]) == ("实验小学护学岗", "实验小学东门", county.station["name"])
            assert record["service_content"] == "护学岗值守：实验小学护学岗" and record["id_type"] == "volunteer_number"
            assert len(record["volunteer_number"]) == 8 and record["id_number"] == record["volunteer_number"]
