"""A service project through the gateway: staff set it up, volunteers sign up, a cancellation promotes the waitlisted
volunteer, and the promotion reaches that volunteer's notifications (and only theirs)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.registry import VolunteerState

from tests.gateway.events import publish_volunteer_states


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_a_cancellation_promotes_the_waitlisted_volunteer_who_is_notified(platform, stack, logins):
    town = f"/c8/t{uuid.uuid4().hex[:8]}"
    states = [VolunteerState(volunteer_id=str(uuid.uuid4()), version=1, display_name=name, status="active", org_unit_id="s1",
                             org_path=f"{town}/s1", lat=32.0, lon=118.8, star=2, updated_at=datetime.now(UTC)) for name in ("钱**", "孙**")]
    await publish_volunteer_states(stack, platform.prefix, states)
    ids = [s.volunteer_id for s in states]

    async def arrived():
        conn = await asyncpg.connect(platform.database_urls["dispatch"].replace("+asyncpg", ""))
        try:
            return await conn.fetchval("SELECT count(*) FROM volunteers WHERE volunteer_id = ANY($1::text[])", ids) == len(ids)
        finally:
            await conn.close()

    await eventually(arrived, timeout_s=30, message="volunteers in dispatch's read model")
    first = _bearer(await logins.token(Role.VOLUNTEER, volunteer_id=ids[0]))
    second = _bearer(await logins.token(Role.VOLUNTEER, volunteer_id=ids[1]))
    admin = _bearer(await logins.token(Role.TOWN_ADMIN, scope_path=town))
    starts_on = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=2)).date()
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        body = {"kind": "care", "name": "四点半课堂", "org_path": f"{town}/s1", "places": [{"name": "村文化礼堂", "lat": 32.0, "lon": 118.8}],
                "capacity": 1, "shift_minutes": 90, "schedule": {"rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "starts_on": starts_on.isoformat(),
                                                                  "start_time": "16:30"}}
        assert (await client.post("/api/v1/projects", json=body, headers=first)).status_code == 403  # volunteers do not set up projects
        created = await client.post("/api/v1/projects", json=body, headers=admin)
        assert created.status_code == 201, created.text
        shifts = (await client.get(f"/api/v1/projects/{created.json()['id']}/shifts", headers=admin)).json()
        assert shifts and shifts[0]["place"]["name"] == "村文化礼堂"
        assert (await client.post(f"/api/v1/shifts/{shifts[0]['id']}/signup", headers=admin)).status_code == 403  # staff do not sign up

        near = (await client.get("/api/v1/shifts/open?radius_km=2", headers=first)).json()
        assert shifts[0]["id"] in [s["id"] for s in near]
        taken = await client.post(f"/api/v1/shifts/{shifts[0]['id']}/signup", headers=first)
        waiting = await client.post(f"/api/v1/shifts/{shifts[0]['id']}/signup", headers=second)
        assert (taken.json()["status"], waiting.json()["status"]) == ("confirmed", "waitlisted")
        assert (await client.post(f"/api/v1/shifts/{shifts[0]['id']}/cancel", json={"reason": "临时加班"}, headers=first)).status_code == 200

        async def promoted():
            items = (await client.get("/api/v1/notifications", headers=second)).json()["items"]
            return [i for i in items if i["kind"] == "shift_signup_promoted"] or None

        notes = await eventually(promoted, timeout_s=30, message="the promotion notified")
        assert notes[0]["title"].startswith("候补转正：") and "四点半课堂（村文化礼堂）" in notes[0]["title"]
        assert notes[0]["data"]["shift_id"] == shifts[0]["id"]
        mine = (await client.get("/api/v1/shifts/mine", headers=second)).json()
        assert [m["status"] for m in mine] == ["confirmed"]
        first_notes = (await client.get("/api/v1/notifications", headers=first)).json()["items"]
        assert not [i for i in first_notes if i["kind"].startswith("shift_signup_")]  # their own sign-up and cancel: no notification
