"""Flow 2 through the gateway only: an activated operation offers shifts, a decline is backfilled, hours become points
once staff approve them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from shouwang_dev.testing import eventually

from tests.e2e.journey import approve_hours, bearer, build_county, expect, hours_written, register_volunteer, wait_until_known_to_dispatch

POST_LAT, POST_LON = 30.2600, 120.1800


async def _offers(client, volunteer) -> list[dict]:
    body = expect(await client.get("/api/v1/assignments/mine", headers=bearer(volunteer.token)), 200)
    return body["items"] if isinstance(body, dict) else body


async def test_activation_offers_backfills_and_credits_hours(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        crew = [await register_volunteer(client, county, lat=POST_LAT + 0.001 * i, lon=POST_LON) for i in range(4)]
        ids = [v.volunteer_id for v in crew]
        await wait_until_known_to_dispatch(platform, ids)

        admin = bearer(county.town_admin_token)
        now = datetime.now(UTC).replace(microsecond=0)
        op = expect(await client.post("/api/v1/operations", headers=admin, json={
            "name": "国际峰会安保（演练）", "org_path": county.town["path"], "posts": [{
                "name": "会展中心东门", "lat": POST_LAT, "lon": POST_LON,
                "shift_start": (now - timedelta(minutes=2)).isoformat(), "shift_end": (now + timedelta(hours=3)).isoformat(),
                "headcount": 3}]}), 201)
        expect(await client.post(f"/api/v1/operations/{op['id']}/activate", headers=admin), 202)

        async def offered():
            found = {v.volunteer_id: o for v in crew for o in await _offers(client, v) if o["operation_id"] == op["id"]}
            return found if len(found) >= 3 else None

        first_wave = await eventually(offered, timeout_s=30, message="three offers after activation")
        waiting = [v for v in crew if v.volunteer_id not in first_wave]
        assert len(first_wave) == 3 and len(waiting) == 1

        decliner, worker = [v for v in crew if v.volunteer_id in first_wave][:2]
        expect(await client.post(f"/api/v1/assignments/{first_wave[decliner.volunteer_id]['id']}/decline",
                                 headers=bearer(decliner.token), json={"reason": "家中有事"}), 200)

        async def backfilled():
            return [o for o in await _offers(client, waiting[0]) if o["operation_id"] == op["id"]] or None

        await eventually(backfilled, timeout_s=30, message="a backfill offer to the volunteer who had none")

        shift = first_wave[worker.volunteer_id]
        expect(await client.post(f"/api/v1/assignments/{shift['id']}/accept", headers=bearer(worker.token)), 200)
        far = await client.post(f"/api/v1/assignments/{shift['id']}/check-in", headers=bearer(worker.token),
                                json={"lat": POST_LAT + 0.05, "lon": POST_LON})
        assert far.status_code == 422 and far.json()["detail"]["field"] == "lat"
        expect(await client.post(f"/api/v1/assignments/{shift['id']}/check-in", headers=bearer(worker.token),
                                 json={"lat": POST_LAT + 0.0002, "lon": POST_LON}), 200)
        fill = expect(await client.get(f"/api/v1/fill-rate/{op['id']}", headers=admin), 200)
        assert fill["required"] == 3 and fill["checked_in"] == 1 and fill["declined_by_reason"] == {"家中有事": 1}, fill
        await asyncio.sleep(25)  # hours are rounded to the hundredth: 25 s (0.007 h) are 0.01 h
        left = expect(await client.post(f"/api/v1/assignments/{shift['id']}/check-out", headers=bearer(worker.token)), 200)
        assert left["hours_status"] == "pending" and await hours_written(platform, [worker.volunteer_id]) == 0
        # The post is the town's (no station given), so its town admin approves, as a station admin does a station's.
        assert (await approve_hours(client, county.town_admin_token, [shift["id"]]))["decided"] == [shift["id"]]

        async def hours_credited():
            body = expect(await client.get("/api/v1/ledger/mine", headers=bearer(worker.token)), 200)
            items = body["items"] if isinstance(body, dict) else body
            return [i for i in items if i["unit"] == "hours"] or None

        hours = await eventually(hours_credited, timeout_s=30, message="service hours in the alliance bank")
        assert float(hours[0]["amount"]) > 0
