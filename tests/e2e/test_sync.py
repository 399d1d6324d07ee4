"""A phone's offline queue replayed through POST /api/v1/sync: in order, once, with reasons for what is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from shouwang_shared.testing import eventually

from tests.e2e.journey import activated_operation, bearer, build_county, expect, register_volunteer, wait_until_known_to_dispatch

POST_LAT, POST_LON = 30.3300, 120.3300


async def test_an_offline_queue_is_done_once_in_order_and_a_replay_changes_nothing(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        volunteer = await register_volunteer(client, county, lat=POST_LAT, lon=POST_LON)
        phone = bearer(volunteer.token)

        await wait_until_known_to_dispatch(platform, [volunteer.volunteer_id])
        now = datetime.now(UTC).replace(microsecond=0)
        admin = bearer(county.town_admin_token)
        op = await activated_operation(client, county, name="离线补传演练", post="村口岗", lat=POST_LAT, lon=POST_LON)

        async def offered():
            body = expect(await client.get("/api/v1/assignments/mine", headers=phone), 200)
            return [a for a in body if a["operation_id"] == op["id"]] or None

        offer = (await eventually(offered, timeout_s=30, message="an offer"))[0]
        at = (now - timedelta(minutes=1)).isoformat()  # done on the phone while the village had no signal
        queue = {"actions": [
            {"id": str(uuid.uuid4()), "kind": "accept", "at": at, "assignment_id": offer["id"]},
            {"id": str(uuid.uuid4()), "kind": "check_in", "at": at, "assignment_id": offer["id"], "body": {"lat": POST_LAT, "lon": POST_LON}},
            {"id": str(uuid.uuid4()), "kind": "tip", "at": at, "body": {"category": "other", "text": "村口的路灯坏了，晚上看不见"}},
            {"id": str(uuid.uuid4()), "kind": "check_out", "at": at},  # the phone lost the task id
            {"id": str(uuid.uuid4()), "kind": "tip", "at": at, "body": {"category": "ufo", "text": "天上有东西在飞"}},
        ]}
        first = expect(await client.post("/api/v1/sync", headers=phone, json=queue), 200)["results"]
        assert [r["outcome"] for r in first] == ["done", "done", "done", "rejected", "rejected"], first
        assert first[1]["result"]["status"] == "checked_in"
        assert first[3]["reason"]["field"] == "assignment_id"
        assert first[4]["status"] == 422 and first[4]["reason"]["field"].endswith("category")  # intel's own reason, passed on

        again = expect(await client.post("/api/v1/sync", headers=phone, json=queue), 200)["results"]
        assert [r["outcome"] for r in again] == ["duplicate"] * 5
        assert [(r["status"], r.get("result"), r.get("reason")) for r in again] == [(r["status"], r.get("result"), r.get("reason")) for r in first]
        mine = expect(await client.get("/api/v1/tips/mine", headers=phone), 200)
        assert [t["text"] for t in mine].count("村口的路灯坏了，晚上看不见") == 1

        bad = await client.post("/api/v1/sync", headers=phone, json={"actions": [{"id": "short", "kind": "tip", "at": at}]})
        assert bad.status_code == 422 and bad.json()["detail"]["field"].endswith("id"), bad.text
        staff = await client.post("/api/v1/sync", headers=admin, json=queue)
        assert staff.status_code == 403
