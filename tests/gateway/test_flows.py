"""Whole flows through the gateway to the real services: staff and volunteer login, and object-level checks."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.registry import VolunteerState

from registry.national_id import make_national_id
from tests.gateway.events import publish_volunteer_states


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_staff_log_in_with_the_password_the_registry_holds(platform, stack, county):
    admin = _bearer(stack.token(Role.COUNTY_ADMIN, scope_path=county["county"]["path"]))
    username = f"town_admin_{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        created = await client.post("/api/v1/staff", headers=admin, json={
            "username": username, "password": "守望-correct-horse", "role": "town_admin", "display_name": "李镇长",
            "org_unit_id": county["town"]["id"]})
        assert created.status_code == 201, created.text
        wrong = await client.post("/api/v1/auth/login", json={"username": username, "password": "not-the-password"})
        assert wrong.status_code == 401 and wrong.json()["detail"]["field"] == "password"
        ok = await client.post("/api/v1/auth/login", json={"username": username, "password": "守望-correct-horse"})
        assert ok.status_code == 200, ok.text
        pair = ok.json()
        assert pair["role"] == "town_admin" and pair["scope_path"] == county["town"]["path"] and pair["display_name"] == "李镇长"
        own_town = await client.get(f"/api/v1/org-units/{county['town']['id']}", headers=_bearer(pair["access_token"]))
        assert own_town.status_code == 200, own_town.text
        assert (await client.post("/api/v1/auth/logout", headers=_bearer(pair["access_token"]))).status_code == 204
        assert (await client.get(f"/api/v1/org-units/{county['town']['id']}", headers=_bearer(pair["access_token"]))).status_code == 401


async def test_volunteer_logs_in_with_a_one_time_code(platform, stack, county):
    admin = _bearer(stack.token(Role.COUNTY_ADMIN, scope_path=county["county"]["path"]))
    phone = f"139{random.randint(0, 99_999_999):08d}"
    person = {"real_name": "王秀英", "national_id": make_national_id("330102", date(1985, 3, 9), random.randint(0, 999)), "phone": phone}
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        created = await client.post("/api/v1/volunteers", headers=admin, json={**person, "org_unit_id": county["station"]["id"]})
        assert created.status_code == 201, created.text
        volunteer_id = created.json()["id"]
        assert (await client.post(f"/api/v1/volunteers/{volunteer_id}/activate", headers=admin)).status_code == 200
        assert (await client.post("/api/v1/auth/codes", json={"phone": f"+86{phone}"})).status_code == 202
        code = (await client.get(f"/api/v1/auth/dev/codes/{phone}")).json()["code"]
        wrong = "000000" if code != "000000" else "111111"
        bad = await client.post("/api/v1/auth/code-login", json={"phone": phone, "code": wrong})
        assert bad.status_code == 401 and bad.json()["detail"]["field"] == "code"
        good = await client.post("/api/v1/auth/code-login", json={"phone": phone, "code": code})
        assert good.status_code == 200, good.text
        pair = good.json()
        assert pair["role"] == "volunteer" and pair["volunteer_id"] == volunteer_id
        again = await client.post("/api/v1/auth/code-login", json={"phone": phone, "code": code})
        assert again.status_code == 401, "a code works once"
        me = await client.get("/api/v1/volunteers/me", headers=_bearer(pair["access_token"]))
        assert me.status_code == 200 and me.json()["id"] == volunteer_id
        assert phone not in me.text and person["national_id"] not in me.text, "PII is masked on the way out"

        stranger = f"137{random.randint(0, 99_999_999):08d}"
        assert (await client.post("/api/v1/auth/codes", json={"phone": stranger})).status_code == 202, "no hint whether a phone is registered"
        assert (await client.get(f"/api/v1/auth/dev/codes/{stranger}")).status_code == 404, "nothing is sent to an unknown phone"

        assert (await client.post("/api/v1/auth/codes", json={"phone": phone})).status_code == 202
        fresh = (await client.get(f"/api/v1/auth/dev/codes/{phone}")).json()["code"]
        for _ in range(5):
            await client.post("/api/v1/auth/code-login", json={"phone": phone, "code": "000000" if fresh != "000000" else "111111"})
        locked = await client.post("/api/v1/auth/code-login", json={"phone": phone, "code": fresh})
        assert locked.status_code == 401 and locked.json()["detail"]["code"] == "code_expired", "five wrong tries burn the code"


async def _publish_volunteers(stack, prefix: str, dispatch_db: str, states: list[VolunteerState]) -> None:
    await publish_volunteer_states(stack, prefix, states)
    ids = [s.volunteer_id for s in states]

    async def arrived():
        conn = await asyncpg.connect(dispatch_db.replace("+asyncpg", ""))
        try:
            return await conn.fetchval("SELECT count(*) FROM volunteers WHERE volunteer_id = ANY($1::text[])", ids) == len(ids)
        finally:
            await conn.close()

    await eventually(arrived, timeout_s=30, message="volunteers in dispatch's read model")


async def test_a_volunteer_cannot_read_or_answer_anothers_assignment_and_gets_their_own_pushed(platform, stack, logins):
    town = "/c9/t1"
    states = [
        VolunteerState(volunteer_id=str(uuid.uuid4()), version=1, display_name=name, status="active", org_unit_id="s1",
                       org_path=f"{town}/s1", lat=31.5 + i * 0.002, lon=121.5, star=3, updated_at=datetime.now(UTC))
        for i, name in enumerate(("张**", "陈**"))
    ]
    await _publish_volunteers(stack, platform.prefix, platform.database_urls["dispatch"], states)
    alice, bob = (s.volunteer_id for s in states)
    alice_token = await logins.token(Role.VOLUNTEER, volunteer_id=alice)
    bob_token = await logins.token(Role.VOLUNTEER, volunteer_id=bob)
    admin = _bearer(await logins.token(Role.TOWN_ADMIN, scope_path=town))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        op = await client.post("/api/v1/operations", headers=admin, json={"name": "城市马拉松", "org_path": town, "posts": [{
            "name": "起点", "lat": 31.5, "lon": 121.5, "shift_start": start.isoformat(),
            "shift_end": (start + timedelta(hours=4)).isoformat(), "headcount": 2}]})
        assert op.status_code == 201, op.text
        op_id = op.json()["id"]
        assert (await client.post(f"/api/v1/operations/{op_id}/activate", headers=admin)).status_code == 202

        async def offers_for(token):
            r = await client.get("/api/v1/assignments/mine", headers=_bearer(token))
            return r.json() if r.status_code == 200 and r.json() else None

        alice_offers = await eventually(lambda: offers_for(alice_token), timeout_s=30, message="alice's offer")
        bob_offers = await eventually(lambda: offers_for(bob_token), timeout_s=30, message="bob's offer")
        mine = alice_offers[0]
        assert mine["volunteer_id"] == alice and all(a["volunteer_id"] == bob for a in bob_offers)

        as_bob = _bearer(bob_token)
        assert (await client.get(f"/api/v1/assignments/{mine['id']}", headers=as_bob)).status_code in (403, 404)
        for action, body in (("accept", None), ("decline", {"reason": "冒名"}), ("check-out", {})):  # each step's own valid body
            resp = await client.post(f"/api/v1/assignments/{mine['id']}/{action}", headers=as_bob, json=body)
            assert resp.status_code in (403, 404), (action, resp.status_code, resp.text)
        assert (await client.get(f"/api/v1/assignments/{mine['id']}", headers=_bearer(alice_token))).status_code == 200
        accepted = await client.post(f"/api/v1/assignments/{mine['id']}/accept", headers=_bearer(alice_token))
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"

        async def alice_notes():
            page = (await client.get("/api/v1/notifications", headers=_bearer(alice_token))).json()
            kinds = {(i["kind"], i["data"].get("assignment_id")) for i in page["items"]}
            return kinds if {("assignment_offered", mine["id"]), ("assignment_answered", mine["id"])} <= kinds else None

        await eventually(alice_notes, timeout_s=30, message="alice's offer and answer notified")
        bob_page = (await client.get("/api/v1/notifications", headers=as_bob)).json()
        assert bob_page["items"] and all(i["data"]["volunteer_id"] == bob for i in bob_page["items"])

        home = (await client.get("/api/v1/me/home", headers=_bearer(alice_token))).json()
        assert home["shifts"]["status"] == "ok" and [a["id"] for a in home["shifts"]["data"]] == [mine["id"]]
