"""Notifications: events from Kafka reach the addressed volunteer's live stream (and nobody else's), and the list."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from shouwang_dev.testing import eventually, fetch_rows, read_topic
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import AssignmentAnswered, AssignmentOffered, Place
from shouwang_shared.contracts.intel import BulletinPublished, Reporter, TipReviewed, TipSubmitted, UrgentCaseAlert
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.contracts.rewards import LedgerEntryPosted, StarChanged, StarChangeWithdrawn
from shouwang_shared.envelope import new_event

from tests.gateway.events import publish_volunteer_states


class SseClient:
    """Reads a gateway notification stream in the background and keeps every event it receives."""

    def __init__(self, base_url: str, token: str, since: str | None = None) -> None:
        self.base_url, self.token, self.since = base_url, token, since
        self.events: list[dict] = []
        self.status: int | None = None
        self.opened = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> SseClient:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.opened.wait(), 20)
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        params = {"since": self.since} if self.since else {}
        async with httpx.AsyncClient(base_url=self.base_url, timeout=None) as client:
            async with client.stream("GET", "/api/v1/notifications/stream", params=params,
                                     headers={"Authorization": f"Bearer {self.token}"}) as response:
                self.status = response.status_code
                self.opened.set()
                event: dict = {}
                async for line in response.aiter_lines():
                    if not line:
                        if "data" in event:
                            self.events.append({**event, "data": json.loads(event["data"])})
                        event = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        event[key] = value.removeprefix(" ")


def offered(volunteer_id: str, name: str = "国际峰会安保") -> object:
    now = datetime.now(UTC)
    assignment_id = str(uuid.uuid4())
    payload = AssignmentOffered(
        assignment_id=assignment_id, operation_id=str(uuid.uuid4()), operation_name=name, post_id=str(uuid.uuid4()),
        volunteer_id=volunteer_id, shift_start=now + timedelta(days=1), shift_end=now + timedelta(days=1, hours=4),
        place=Place(name="西湖文化广场东门", lat=30.27, lon=120.16), respond_by=now + timedelta(hours=2),
    )
    return new_event(source=payload.SOURCE, type=payload.TYPE, subject=assignment_id, data=payload)


async def publish(producer, prefix: str, event, topic: str) -> None:
    await producer.send_and_wait(f"{prefix}{topic}", event.to_bytes(), key=event.subject.encode())


async def test_a_pushed_offer_reaches_the_addressed_volunteer_and_nobody_else(platform, logins, producer):
    alice, bob = f"vol-a-{uuid.uuid4().hex[:6]}", f"vol-b-{uuid.uuid4().hex[:6]}"
    alice_token = await logins.token(Role.VOLUNTEER, volunteer_id=alice)
    bob_token = await logins.token(Role.VOLUNTEER, volunteer_id=bob)
    async with SseClient(platform.gateway_url, alice_token) as alice_stream, SseClient(platform.gateway_url, bob_token) as bob_stream:
        assert alice_stream.status == 200 and bob_stream.status == 200
        for_alice = offered(alice)
        await publish(producer, platform.prefix, for_alice, AssignmentOffered.TOPIC)
        await eventually(lambda: alice_stream.events, timeout_s=20, message="alice's offer pushed")
        got = alice_stream.events[0]
        assert got["event"] == "assignment_offered" and got["data"]["data"]["assignment_id"] == for_alice.subject
        assert "国际峰会安保" in got["data"]["title"] and got["id"] == got["data"]["id"]
        await asyncio.sleep(1.0)
        assert bob_stream.events == [], "bob must not see alice's offer"
        for_bob = offered(bob, name="全会安保")
        await publish(producer, platform.prefix, for_bob, AssignmentOffered.TOPIC)
        await eventually(lambda: bob_stream.events, timeout_s=20, message="bob's offer pushed")
        assert [e["data"]["data"]["volunteer_id"] for e in bob_stream.events] == [bob]
        await asyncio.sleep(0.5)
        assert [e["data"]["data"]["volunteer_id"] for e in alice_stream.events] == [alice]


async def test_a_summit_sized_burst_of_offers_is_stored_once_each_and_wakes_every_open_stream(platform, logins, producer, stack):
    run = uuid.uuid4().hex[:6]
    volunteers = [f"vol-burst-{run}-{n}" for n in range(600)]
    watched = [volunteers[0], volunteers[299], volunteers[-1]]
    tokens = [await logins.token(Role.VOLUNTEER, volunteer_id=v) for v in watched]
    offers = [offered(v, name="峰会批量") for v in volunteers]
    async with SseClient(platform.gateway_url, tokens[0]) as first, SseClient(platform.gateway_url, tokens[1]) as middle, \
            SseClient(platform.gateway_url, tokens[2]) as last:
        for event in offers:  # one flush: the gateway's consumer gets them in a few fetches, as from the relay
            await producer.send(f"{platform.prefix}{AssignmentOffered.TOPIC}", event.to_bytes(), key=event.data["volunteer_id"].encode())
        await producer.flush()
        streams = (first, middle, last)
        await eventually(lambda: all(s.events for s in streams), timeout_s=30, message="every watched phone got its offer")
        for stream, volunteer_id in zip(streams, watched, strict=True):
            assert [e["data"]["data"]["volunteer_id"] for e in stream.events] == [volunteer_id]
    marker = offered(volunteers[1], name="重放之后")
    for event in [*offers[:100], marker]:  # a replay of part of the burst, then a new offer, all on one partition
        await producer.send(f"{platform.prefix}{AssignmentOffered.TOPIC}", event.to_bytes(), key=b"replay")
    await producer.flush()
    gateway_db = platform.database_urls["gateway"]

    async def all_stored():
        rows = await fetch_rows(gateway_db, "SELECT event_id, count(*) AS n FROM notifications WHERE volunteer_id LIKE $1 GROUP BY event_id",
                                f"vol-burst-{run}-%")
        return rows if len(rows) >= len(offers) else None

    await eventually(all_stored, timeout_s=30, message="all 600 offers stored")
    await eventually(  # stored after the replay on its partition: the replay was consumed
lambda: fetch_rows(gateway_db, "SELECT 1 FROM notifications WHERE event_id = $1", marker.id), timeout_s=30,
                     message="the marker after the replay")
    rows = await fetch_rows(gateway_db, "SELECT event_id, count(*) AS n FROM notifications WHERE volunteer_id LIKE $1 GROUP BY event_id",
                            f"vol-burst-{run}-%")
    assert sorted(r["event_id"] for r in rows) == sorted([e.id for e in offers] + [marker.id]) and all(r["n"] == 1 for r in rows)


async def test_a_storm_of_ledger_entries_reaches_each_reporters_stream_as_the_list_shows_it(platform, logins, producer):
    run = uuid.uuid4().hex[:8]
    reporters = [f"vol-storm-{run}-{n}" for n in range(300)]
    watched = [reporters[0], reporters[150], reporters[-1]]
    tokens = [await logins.token(Role.VOLUNTEER, volunteer_id=v) for v in watched]
    entries = [LedgerEntryPosted(
        entry_id=str(uuid.uuid4()), account=f"volunteer:{v}", volunteer_id=v, unit="points", amount=5 + n % 3, balance_after=100 + n,
        reason="提供线索", rule_version="2026.1", source_event_id=str(uuid.uuid4()), posted_at=datetime.now(UTC),
    ) for n, v in enumerate(reporters)]
    async with SseClient(platform.gateway_url, tokens[0]) as first, SseClient(platform.gateway_url, tokens[1]) as middle, \
            SseClient(platform.gateway_url, tokens[2]) as last:
        for entry in entries:  # one flush: the gateway's consumer stores them a fetch at a time, with one statement each
            event = new_event(source=entry.SOURCE, type=entry.TYPE, subject=entry.account, data=entry)
            await producer.send(f"{platform.prefix}{LedgerEntryPosted.TOPIC}", event.to_bytes(), key=entry.account.encode())
        await producer.flush()
        streams = (first, middle, last)
        await eventually(lambda: all(s.events for s in streams), timeout_s=30, message="every watched reporter got their points")
    for stream, volunteer_id, token in zip(streams, watched, tokens, strict=True):
        async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            listed = (await client.get("/api/v1/notifications", params={"since": "0"})).json()["items"]
        assert [e["data"] for e in stream.events] == listed, "the stream shows a notification exactly as the list does"
        assert [(e["id"], e["event"]) for e in stream.events] == [(i["id"], "ledger_entry_posted") for i in listed]
        entry = next(e for e in entries if e.volunteer_id == volunteer_id)
        assert listed[0]["data"]["entry_id"] == entry.entry_id and listed[0]["title"] == f"积分 +{entry.amount:g}：提供线索"


async def test_an_offline_phone_catches_up_with_since_and_replays_change_nothing(platform, logins, producer, stack):
    carol = f"vol-c-{uuid.uuid4().hex[:6]}"
    token = await logins.token(Role.VOLUNTEER, volunteer_id=carol)
    offer = offered(carol)
    answer_payload = AssignmentAnswered(
        assignment_id=offer.subject, operation_id=offer.data["operation_id"], post_id=offer.data["post_id"],
        volunteer_id=carol, answer="accepted", at=datetime.now(UTC),
    )
    answer = new_event(source=answer_payload.SOURCE, type=answer_payload.TYPE, subject=offer.subject, data=answer_payload)
    credit = LedgerEntryPosted(
        entry_id=str(uuid.uuid4()), account=f"volunteer:{carol}", volunteer_id=carol, unit="points", amount=20,
        balance_after=120, reason="线索核实奖励", rule_version="2026.1", source_event_id=str(uuid.uuid4()), posted_at=datetime.now(UTC),
    )
    anonymous_credit = credit.model_copy(update={"entry_id": str(uuid.uuid4()), "account": "claim:R-1", "volunteer_id": None})
    ledger_events = [new_event(source=c.SOURCE, type=c.TYPE, subject=c.account, data=c) for c in (credit, anonymous_credit)]
    poison = new_event(source=AssignmentOffered.SOURCE, type=AssignmentOffered.TYPE, subject="bad", data={"volunteer_id": carol})
    for event in (offer, offer, answer, poison):
        await publish(producer, platform.prefix, event, AssignmentOffered.TOPIC)
    for event in ledger_events:
        await publish(producer, platform.prefix, event, LedgerEntryPosted.TOPIC)

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        async def three():
            page = (await client.get("/api/v1/notifications", params={"since": "0"})).json()
            return page if len(page["items"]) >= 3 else None

        page = await eventually(three, timeout_s=30, message="three notifications for carol")
        await asyncio.sleep(0.5)
        page = (await client.get("/api/v1/notifications", params={"since": "0"})).json()
        kinds = sorted(i["kind"] for i in page["items"])
        assert kinds == ["assignment_answered", "assignment_offered", "ledger_entry_posted"], "a replayed offer is stored once"
        ledger = next(i for i in page["items"] if i["kind"] == "ledger_entry_posted")
        assert ledger["title"] == "积分 +20：线索核实奖励"
        after = (await client.get("/api/v1/notifications", params={"since": page["next_cursor"]})).json()
        assert after["items"] == [] and after["next_cursor"] == page["next_cursor"]
        middle = page["items"][0]["id"]
        rest = (await client.get("/api/v1/notifications", params={"since": middle})).json()
        assert [i["id"] for i in rest["items"]] == [i["id"] for i in page["items"][1:]]

    async with SseClient(platform.gateway_url, token, since=page["items"][0]["id"]) as resumed:
        await eventually(lambda: len(resumed.events) >= 2, timeout_s=10, message="resumed stream")
        assert [e["id"] for e in resumed.events] == [i["id"] for i in page["items"][1:]]

    dead = await read_topic(stack.bootstrap_servers, f"{platform.prefix}gateway.dlq.v1")
    reasons = [h.get("dlq_reason", b"").decode() for _, value, h in dead if getattr(value, "id", None) == poison.id]
    assert reasons and "assignment_id" in reasons[0]


async def test_a_star_change_and_its_withdrawal_reach_the_volunteer(platform, logins, producer):
    dave = f"vol-d-{uuid.uuid4().hex[:6]}"
    token = await logins.token(Role.VOLUNTEER, volunteer_id=dave)
    effective = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
    change = StarChanged(volunteer_id=dave, old_star=2, new_star=3, effective_at=effective,
                         notice_until=effective - timedelta(days=1), reason="服务时长满 100 小时")
    withdrawn = StarChangeWithdrawn(volunteer_id=dave, star=2, withdrawn_star=3, withdrawn_effective_at=effective, reason="公示期内有缺勤记录")
    announced, taken_back = (new_event(source=p.SOURCE, type=p.TYPE, subject=dave, data=p) for p in (change, withdrawn))
    for event in (announced, announced, taken_back):  # the announcement delivered twice is stored once
        await publish(producer, platform.prefix, event, StarChanged.TOPIC)

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        async def both():
            items = (await client.get("/api/v1/notifications")).json()["items"]
            return items if len(items) >= 2 else None

        items = await eventually(both, timeout_s=30, message="the star notifications")
        assert [(i["kind"], i["title"]) for i in items] == [
            ("star_changed", "星级将于12月10日由2星变为3星：服务时长满 100 小时"),
            ("star_change_withdrawn", "星级保持2星（原定变为3星已撤回）：公示期内有缺勤记录"),
        ]


async def test_a_bulletin_reaches_the_active_volunteers_of_its_area_once(platform, logins, producer, stack):
    area = f"/c1/t{uuid.uuid4().hex[:6]}"
    def state(path: str, status: str = "active") -> VolunteerState:
        return VolunteerState(volunteer_id=str(uuid.uuid4()), version=1, display_name="郑**", status=status, org_unit_id="s1",
                              org_path=path, updated_at=datetime.now(UTC))

    inside, below, suspended, elsewhere = state(area), state(f"{area}/s1"), state(f"{area}/s2", "suspended"), state(f"{area}0/s1")
    await publish_volunteer_states(stack, platform.prefix, [inside, below, suspended, elsewhere])
    tokens = {v.volunteer_id: await logins.token(Role.VOLUNTEER, volunteer_id=v.volunteer_id) for v in (inside, below, elsewhere)}
    bulletin = BulletinPublished(bulletin_id=str(uuid.uuid4()), title="谨防冒充客服退款诈骗", body="请勿向陌生人转账。", case_type="fraud",
                                 channels=["public_account"], audience_org_paths=[area], published_at=datetime.now(UTC))
    event = new_event(source=bulletin.SOURCE, type=bulletin.TYPE, subject=bulletin.bulletin_id, data=bulletin)

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        async def bulletins_of(volunteer_id: str) -> list[dict]:
            items = (await client.get("/api/v1/notifications", headers={"Authorization": f"Bearer {tokens[volunteer_id]}"})).json()["items"]
            return [i for i in items if i["kind"] == "bulletin_published"]

        async def known() -> bool:  # the gateway holds the states before the bulletin is published
            rows = await fetch_rows(platform.database_urls["gateway"], "SELECT count(*) AS n FROM subject_status WHERE org_path LIKE $1",
                                    f"{area}%")
            return rows[0]["n"] == 4

        await eventually(known, timeout_s=30, message="the volunteers' areas")
        for _ in range(2):  # delivered twice: notified once
            await publish(producer, platform.prefix, event, BulletinPublished.TOPIC)
        got = await eventually(lambda: bulletins_of(below.volunteer_id), timeout_s=30, message="the bulletin in the area's feeds")
        assert [g["title"] for g in got] == ["平安提示：谨防冒充客服退款诈骗"]
        await asyncio.sleep(0.5)
        assert len(await bulletins_of(inside.volunteer_id)) == 1 and len(await bulletins_of(below.volunteer_id)) == 1
        assert await bulletins_of(elsewhere.volunteer_id) == []  # /c1/t…0 is not under /c1/t…


async def test_a_volunteers_tip_outcome_reaches_them_and_an_anonymous_ones_reaches_nobody(platform, logins, producer):
    erin = f"vol-e-{uuid.uuid4().hex[:6]}"
    token = await logins.token(Role.VOLUNTEER, volunteer_id=erin)
    mine, anonymous = Reporter(kind="volunteer", volunteer_id=erin), Reporter(kind="anonymous", claim_ref="c" * 32)
    submitted = TipSubmitted(tip_id=str(uuid.uuid4()), category="fraud", channel="app", reporter=mine, submitted_at=datetime.now(UTC))
    rejected = TipReviewed(tip_id=submitted.tip_id, verdict="rejected", reason="duplicate", category="fraud", reporter=mine)
    verified = TipReviewed(tip_id=str(uuid.uuid4()), verdict="verified", category="drugs", reporter=mine)
    unnamed = TipReviewed(tip_id=str(uuid.uuid4()), verdict="verified", category="drugs", reporter=anonymous)
    for payload in (submitted, rejected, verified, unnamed):
        await publish(producer, platform.prefix, new_event(source=payload.SOURCE, type=payload.TYPE, subject=payload.tip_id, data=payload),
                      TipReviewed.TOPIC)

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        async def reviews():
            items = [i for i in (await client.get("/api/v1/notifications")).json()["items"] if i["kind"] == "tip_reviewed"]
            return items if len(items) >= 2 else None

        items = await eventually(reviews, timeout_s=30, message="erin's tip outcomes")
        # Two tips' outcomes are events of different keys (partitions): the feed keeps each once, in no promised order.
        assert sorted((i["title"], i["data"]["tip_id"]) for i in items) == sorted([
            ("您的线索未被采纳：与已有线索重复", submitted.tip_id), ("您的线索已核实，感谢！", verified.tip_id)])
    rows = await fetch_rows(platform.database_urls["gateway"], "SELECT count(*) AS n FROM notifications WHERE data->>'tip_id' = $1",
                            unnamed.tip_id)
    assert rows[0]["n"] == 0


async def test_notifications_need_a_person_and_staff_read_their_own_feed(platform, logins):
    staff = await logins.token(Role.COUNTY_ADMIN, scope_path="/county")
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        assert (await client.get("/api/v1/notifications")).status_code == 401
        own = await client.get("/api/v1/notifications", headers={"Authorization": f"Bearer {staff}"})
        assert own.status_code == 200 and own.json()["items"] == []


async def test_an_urgent_case_alert_reaches_the_on_duty_staff_it_names_once_and_nobody_else(platform, logins, producer):
    on_duty, also_on_duty, off_duty = (f"analyst-{n}-{uuid.uuid4().hex[:6]}" for n in ("a", "b", "c"))
    tokens = {sub: await logins.token(Role.ANALYST, scope_path="/c1/t1", sub=sub) for sub in (on_duty, also_on_duty, off_duty)}
    volunteer = await logins.token(Role.VOLUNTEER, volunteer_id=on_duty)  # a volunteer id equal to a staff subject sees nothing of it
    now = datetime.now(UTC)
    alert = UrgentCaseAlert(
        alert_id=str(uuid.uuid4()), case_id=str(uuid.uuid4()), reference="SW-2026-000777", category="missing_person",
        case_org_path="/c1/t1/s1", alerted_org_path="/c1/t1", level=1, escalated=True, recipients=[on_duty, also_on_duty],
        raised_at=now, claim_due_at=now + timedelta(minutes=15),
    )
    event = new_event(source=alert.SOURCE, type=alert.TYPE, subject=alert.case_id, data=alert)
    for _ in range(2):  # delivered twice: notified once
        await publish(producer, platform.prefix, event, UrgentCaseAlert.TOPIC)

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        async def alerts_of(token: str) -> list[dict]:
            items = (await client.get("/api/v1/notifications", headers={"Authorization": f"Bearer {token}"})).json()["items"]
            return [i for i in items if i["kind"] == "urgent_case_alert"]

        got = await eventually(lambda: alerts_of(tokens[also_on_duty]), timeout_s=30, message="the alert in the on-duty feed")
        assert len(got) == 1 and got[0]["data"]["case_id"] == alert.case_id and "recipients" not in got[0]["data"]
        assert got[0]["title"].startswith("紧急案件（上级转来，下级未认领）：SW-2026-000777 走失人员")
        await asyncio.sleep(0.5)
        assert len(await alerts_of(tokens[on_duty])) == 1
        assert await alerts_of(tokens[off_duty]) == [] and await alerts_of(volunteer) == []
