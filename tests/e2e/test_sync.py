"""A phone's offline queue replayed through POST /api/v1/sync: in order, once, with reasons for what is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shouwang_dev.testing import eventually, fetch_rows

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


PATROL_NOTES = [  # what a grid worker types at night, thumb on a cracked screen
    "{n}组村道路灯又不亮了，黑乎乎的", "晚上{h}点多看到两个人在{n}组仓库门口转来转去，不像本村的",
    "村口桥头护栏断了一截 小孩子放学要走的", "{n}组有户人家电瓶车在楼道里充电，劝了不听", "河边钓鱼的把垃圾扔得到处都是",
    "有辆没牌照的面包车停在{n}组小卖部后面好几天了", "老年活动室旁边的消防栓被人挪走了？", "听说有人挨家挨户推销保健品，专找老人",
    "{n}组两户人家为了宅基地吵起来了，声音很大", "晚上{h}点有人在水库边放鞭炮", "村小门口早上车停得乱七八糟，差点撞到学生",
    "{n}组空房子里好像有人住进去了，晚上有灯", "有人在路边烧秸秆 烟很大", "菜市场门口有人摆摊卖来路不明的手机",
]


def _patrol_note(i: int) -> str:
    return PATROL_NOTES[i % len(PATROL_NOTES)].format(n=i % 9 + 1, h=19 + i % 5) + f"（第{i + 1}条巡查记录）"


async def _sync_all(client, phone: dict, queue: list[dict]) -> list[dict]:
    """Send the queue in pages of at most 100, in order, as a phone does; every answer, in order."""
    results = []
    for start in range(0, len(queue), 100):
        page = expect(await client.post("/api/v1/sync", headers=phone, json={"actions": queue[start:start + 100]}), 200)["results"]
        results.extend(page)
    return results


async def test_two_hundred_actions_captured_while_the_gateway_is_down_are_applied_once_by_the_late_sync_rule(platform):
    lat, lon = 30.4100, 120.4100
    async with platform.client() as client:
        county = await build_county(platform, client)
        volunteer = await register_volunteer(client, county, lat=lat, lon=lon)
        phone = bearer(volunteer.token)
        await wait_until_known_to_dispatch(platform, [volunteer.volunteer_id])
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
        ops = [await activated_operation(client, county, name=f"山村夜巡{i}", post=f"村委会{i}", lat=lat, lon=lon, start=later + timedelta(hours=3 * i))
               for i in range(2)]

        async def offers():
            body = expect(await client.get("/api/v1/assignments/mine", headers=phone), 200)
            mine = {a["operation_id"]: a for a in body if a["operation_id"] in {op["id"] for op in ops}}
            return mine if len(mine) == 2 else None

        mine = await eventually(offers, timeout_s=30, message="offers for both patrols")
        old, recent = (mine[op["id"]]["id"] for op in ops)
        for assignment_id in (old, recent):  # accepted at home, with signal
            expect(await client.post(f"/api/v1/assignments/{assignment_id}/accept", headers=phone), 200)

    gateway = platform.services["gateway"]
    gateway.stop()
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        old_start, recent_start = now - timedelta(hours=32), now - timedelta(hours=3)
        moved = "UPDATE assignments SET shift_start = $2::timestamptz, shift_end = $2::timestamptz + interval '2 hours' WHERE id = $1::uuid"
        await fetch_rows(platform.database_urls["dispatch"], moved, old, old_start)  # time passes: one patrol ran two days ago,
        await fetch_rows(platform.database_urls["dispatch"], moved, recent, recent_start)  # the other ended an hour ago

        def action(kind: str, at: datetime, **fields) -> dict:
            return {"id": str(uuid.uuid4()), "kind": kind, "at": at.isoformat(), **fields}

        at_post = {"lat": lat, "lon": lon}
        queue = [
            action("check_in", old_start - timedelta(hours=3), assignment_id=old, body=at_post),  # the phone's clock before the window
            action("check_in", old_start + timedelta(minutes=5), assignment_id=old, body=at_post),
            action("check_out", old_start + timedelta(minutes=95), assignment_id=old),
            action("check_in", recent_start + timedelta(minutes=10), assignment_id=recent, body=at_post),
            action("check_out", recent_start + timedelta(minutes=100), assignment_id=recent),
            action("check_out", now - timedelta(minutes=30)),  # the task id was lost
            action("tip", now - timedelta(hours=5), body={"category": "ufo", "text": "天上有东西在飞"}),
            action("need", now - timedelta(hours=5), body={"category": "elder_care", "description": "帮"}),
        ]
        queue += [action("tip", old_start + timedelta(minutes=2 + i), body={"category": "other", "text": _patrol_note(i)}) for i in range(149)]
        queue += [action("need", recent_start + timedelta(minutes=i), body={
            "category": "elder_care", "description": f"{i % 9 + 1}组独居老人家里的灯坏了，想请志愿者帮忙看看（第{i + 1}户）", "place_text": "上塘村"})
            for i in range(41)]
        queue.insert(60, queue[59])  # a double tap: the same action queued twice, side by side
        queue.insert(150, queue[20])  # and once more on the next page
        assert len(queue) == 200

        async with platform.client() as client:
            while_down = await client.post("/api/v1/sync", headers=phone, json={"actions": queue[:100]})
    except httpx.TransportError:
        pass  # the phone keeps its queue
    else:
        raise AssertionError(f"the gateway answered while stopped: {while_down.status_code}")
    finally:
        gateway.start()
        gateway.wait_healthy(90, ready=True)

    async with platform.client() as client:
        first = await _sync_all(client, phone, queue)
        outcomes = [r["outcome"] for r in first]
        assert outcomes.count("retry") == 0, [r for r in first if r["outcome"] == "retry"][:3]
        assert [i for i, r in enumerate(first) if r["outcome"] == "duplicate"] == [60, 150]
        rejected = {i: (r["status"], r["reason"].get("field")) for i, r in enumerate(first) if r["outcome"] == "rejected"}
        assert rejected == {0: (422, "at"), 5: (422, "assignment_id"), 6: (422, "category"), 7: (422, "description")}, rejected
        assert outcomes.count("done") == 194

        old_in, recent_in = first[1]["result"], first[3]["result"]
        assert (datetime.fromisoformat(old_in["checked_in_at"]), old_in["review_reason"]) == (old_start + timedelta(minutes=5), "late_sync")
        assert (datetime.fromisoformat(recent_in["checked_in_at"]), recent_in["review_reason"]) == (recent_start + timedelta(minutes=10), None)
        assert first[2]["result"]["hours"] == pytest.approx(1.5) and first[4]["result"]["hours"] == pytest.approx(1.5)

        again = await _sync_all(client, phone, queue)  # the phone never heard the answers and sends it all again
        assert [r["outcome"] for r in again] == ["duplicate"] * 200
        assert [(r["status"], r.get("result"), r.get("reason")) for r in again] == [(r["status"], r.get("result"), r.get("reason")) for r in first]

    tips = await fetch_rows(platform.database_urls["intel"], "SELECT text FROM tips WHERE volunteer_id = $1", volunteer.volunteer_id)
    assert sorted(t["text"] for t in tips) == sorted(_patrol_note(i) for i in range(149))
    needs = await fetch_rows(platform.database_urls["intel"], "SELECT count(*) AS n FROM needs WHERE volunteer_id = $1", volunteer.volunteer_id)
    assert needs[0]["n"] == 41
    attendance = await fetch_rows(platform.database_urls["dispatch"], "SELECT id::text, status, review_reason, hours_status FROM assignments"
                                  " WHERE id = ANY($1::uuid[]) ORDER BY shift_start", [old, recent])
    assert [(a["id"], a["status"], a["review_reason"], a["hours_status"]) for a in attendance] == [
        (old, "checked_out", "late_sync", "pending"), (recent, "checked_out", None, "pending")]  # synced hours wait for approval too
