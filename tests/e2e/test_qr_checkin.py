"""QR check-in through the gateway: the station's admin prints the post's QR, a volunteer's phone scans it and checks in;
a station admin of another town cannot get it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shouwang_shared.testing import eventually

from tests.dispatch.test_checkin_qr import decode_png
from tests.e2e.journey import bearer, build_county, expect, register_volunteer, wait_until_known_to_dispatch

POST_LAT, POST_LON = 30.3100, 120.2400


async def test_the_station_prints_the_qr_and_a_volunteer_checks_in_with_what_it_scans(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        other = await build_county(platform, client)  # another town, with its own station admin
        volunteer = await register_volunteer(client, county, lat=POST_LAT + 0.0005, lon=POST_LON)
        await wait_until_known_to_dispatch(platform, [volunteer.volunteer_id])

        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        op = expect(await client.post("/api/v1/operations", headers=bearer(county.town_admin_token), json={
            "name": "东门社区夜巡", "org_path": county.town["path"], "posts": [{
                "name": "东门社区广场", "lat": POST_LAT, "lon": POST_LON, "org_path": county.station["path"],
                "shift_start": start.isoformat(), "shift_end": (start + timedelta(hours=2)).isoformat(), "headcount": 1}]}), 201)
        expect(await client.post(f"/api/v1/operations/{op['id']}/activate", headers=bearer(county.town_admin_token)), 202)

        async def offered():
            body = expect(await client.get("/api/v1/assignments/mine", headers=bearer(volunteer.token)), 200)
            mine = [a for a in (body["items"] if isinstance(body, dict) else body) if a["operation_id"] == op["id"]]
            return mine[0] if mine else None

        shift = await eventually(offered, timeout_s=30, message="an offer for the volunteer")
        qr = f"/api/v1/operations/{op['id']}/posts/{shift['post_id']}/checkin-qr.png?mode=shift"
        denied = await client.get(qr, headers=bearer(other.station_admin_token))
        assert denied.status_code == 403, denied.text
        assert (await client.get(qr, headers=bearer(volunteer.token))).status_code == 403
        printed = await client.get(qr, headers=bearer(county.station_admin_token))
        assert printed.status_code == 200 and printed.headers["content-type"] == "image/png", printed.text
        scanned = decode_png(printed.content)

        expect(await client.post(f"/api/v1/assignments/{shift['id']}/accept", headers=bearer(volunteer.token)), 200)
        arrived = expect(await client.post(f"/api/v1/assignments/{shift['id']}/check-in", headers=bearer(volunteer.token),
                                           json={"qr_token": scanned, "lat": POST_LAT + 0.0003, "lon": POST_LON}), 200)
        assert (arrived["status"], arrived["review_reason"]) == ("checked_in", None)
