"""Dead letters, stars with a notice period, redemptions that never overdraw, leaderboards and commendations."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import TipSubmitted
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.contracts.rewards import StarChanged, StarChangeWithdrawn
from shouwang_shared.envelope import new_event

from rewards.stars import sweep_stars
from tests.rewards.conftest import now, uid
from tests.rewards.test_crediting import tip


def hours_record(vid: str, hours: float, *, org_path: str | None = None, difficulty: int = 1) -> ServiceHoursRecorded:
    return ServiceHoursRecorded(
        record_id=uid("h-"), assignment_id=uid("a-"), volunteer_id=vid, operation_id="op", post_id="p", hours=hours,
        difficulty=difficulty, started_at=now() - timedelta(hours=max(hours, 0)), ended_at=now(), org_path=org_path,
    )


def state(vid: str, org_path: str, name: str, *, version: int = 1, training_compliant: bool = True) -> VolunteerState:
    return VolunteerState(
        volunteer_id=vid, version=version, display_name=name, status="active", org_unit_id=org_path.rsplit("/", 1)[-1],
        org_path=org_path, training_compliant=training_compliant, updated_at=now(),
    )


async def test_bad_events_are_dead_lettered_with_the_reason_and_the_rest_goes_on(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    negative = await rewards.publish(hours_record(vid, 2).model_copy(update={"hours": -3}), subject="k")
    fact = tip(vid, "fraud")
    unknown = await rewards.publish(fact, subject="k", rule_version="1999.9")
    broken = new_event(source="/services/intel", type=TipSubmitted.TYPE, subject="k", data={"tip_id": "x", "category": "精灵"})
    await rewards.producer.send_and_wait(f"{rewards.prefix}{TipSubmitted.TOPIC}", broken.to_bytes(), key=b"k")
    good = tip(vid, "fraud")
    await rewards.publish(good, subject="k")
    await rewards.publish(hours_record(vid, 2), subject="k")

    async def dead():
        msgs = await read_topic(rewards.stack.bootstrap_servers, f"{rewards.prefix}rewards.dlq.v1")
        return {h["ce_id"].decode() if "ce_id" in h else m.id: h["dlq_reason"].decode() for _, m, h in msgs}
    reasons = await eventually(lambda: _has(dead, {negative.id, unknown.id, broken.id}), message="three dead letters")
    assert "negative amount: hours=-3" in reasons[negative.id]
    assert "unknown rule version '1999.9'" in reasons[unknown.id]
    assert "category" in reasons[broken.id] and "tip_id" not in reasons[broken.id].split("invalid payload:")[0]
    await rewards.settle(start + 2)
    assert await rewards.balance(f"volunteer:{vid}") == 20  # the good 2 hours
    assert await rewards.balance(f"pending:volunteer:{vid}") == 10  # the good tip, pending review


async def _has(source, ids):
    found = await source()
    return found if ids <= set(found) else None


async def test_a_star_change_is_announced_then_applied_after_the_public_notice(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(state(vid, "/c/t9/s9", "王**"), subject=vid)
    await rewards.publish(hours_record(vid, 25, difficulty=1), subject=vid)  # 25 h, 250 points: star 2
    await rewards.settle(start + 2)
    sessions = rewards.app.state.runtime.sessions
    t0 = now()
    await sweep_stars(sessions=sessions, now=t0)
    before = (await rewards.client.get("/v1/stars/me", headers=rewards.headers(volunteer_id=vid))).json()
    assert before["star"] == 1 and before["pending"]["star"] == 2 and before["earned_star"] == 2
    assert any("3星还差" in r for r in before["why"])

    async def announced():
        msgs = await read_topic(rewards.stack.bootstrap_servers, f"{rewards.prefix}{StarChanged.TOPIC}")
        return [m for _, m, _ in msgs if m.subject == vid]
    [change] = await eventually(announced, message="StarChanged")
    assert change.data["new_star"] == 2 and change.data["old_star"] == 1

    await sweep_stars(sessions=sessions, now=t0 + timedelta(days=3))
    assert (await rewards.client.get("/v1/stars/me", headers=rewards.headers(volunteer_id=vid))).json()["star"] == 1
    await sweep_stars(sessions=sessions, now=t0 + timedelta(days=7, seconds=1))
    after = (await rewards.client.get("/v1/stars/me", headers=rewards.headers(volunteer_id=vid))).json()
    assert after["star"] == 2 and after["pending"] is None and after["history"][0]["applied_at"] is not None
    thresholds = (await rewards.client.get("/v1/rules/current/stars", headers=rewards.headers(volunteer_id=vid))).json()
    assert [t["star"] for t in thresholds["stars"]] == [1, 2, 3, 4, 5] and thresholds["notice_days"] == 7


async def test_a_star_change_withdrawn_during_the_notice_is_announced_as_withdrawn(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(state(vid, "/c/t9/s8", "李**"), subject=vid)
    await rewards.publish(hours_record(vid, 25, difficulty=1), subject=vid)  # star 2 earned, announced with a notice
    await rewards.settle(start + 2)
    sessions = rewards.app.state.runtime.sessions
    t0 = now()
    await sweep_stars(sessions=sessions, now=t0)
    pending = (await rewards.client.get("/v1/stars/me", headers=rewards.headers(volunteer_id=vid))).json()["pending"]
    assert pending["star"] == 2
    start = await rewards.processed()
    no_show = AssignmentAttendance(assignment_id=uid("a-"), operation_id="op", post_id="p", volunteer_id=vid, action="no_show", at=now())
    await rewards.publish(no_show, subject=vid)  # reliability 0: star 2 is no longer earned before the notice ends
    await rewards.settle(start + 1)
    await sweep_stars(sessions=sessions, now=t0 + timedelta(days=1))
    after = (await rewards.client.get("/v1/stars/me", headers=rewards.headers(volunteer_id=vid))).json()
    assert after["star"] == 1 and after["pending"] is None

    async def withdrawn():
        msgs = await read_topic(rewards.stack.bootstrap_servers, f"{rewards.prefix}{StarChangeWithdrawn.TOPIC}")
        return [m for _, m, _ in msgs if m.subject == vid and m.type == StarChangeWithdrawn.TYPE] or None

    [withdrawal] = await eventually(withdrawn, message="StarChangeWithdrawn")
    assert (withdrawal.data["star"], withdrawal.data["withdrawn_star"]) == (1, 2)
    assert withdrawal.data["withdrawn_effective_at"].startswith(pending["effective_at"][:19])


async def test_no_shows_lower_reliability(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(hours_record(vid, 25), subject=vid)
    for _ in range(2):
        no_show = AssignmentAttendance(assignment_id=uid("a-"), operation_id="op", post_id="p", volunteer_id=vid, action="no_show", at=now())
        await rewards.publish(no_show, subject=vid)
        await rewards.publish(no_show, subject=vid)  # counted once per assignment
    await rewards.settle(start + 5)
    star = (await rewards.client.get("/v1/stars/me", headers=rewards.headers(volunteer_id=vid))).json()
    assert star["record"]["no_shows"] == 2 and abs(star["record"]["reliability"] - 1 / 3) < 1e-9
    assert star["earned_star"] == 1 and any("履约率" in r for r in star["why"])


async def test_a_late_offline_check_in_takes_back_its_no_show(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(hours_record(vid, 25), subject=vid)
    missed = [AssignmentAttendance(assignment_id=uid("a-"), operation_id="op", post_id="p", volunteer_id=vid, action="no_show", at=now())
              for _ in range(2)]
    for no_show in missed:
        await rewards.publish(no_show, subject=vid)
    arrived = missed[0].model_copy(update={"action": "checked_in"})  # the phone synced a check-in inside the shift
    await rewards.publish(arrived, subject=vid)
    await rewards.publish(arrived, subject=vid)  # taken back once
    await rewards.settle(start + 5)
    star = (await rewards.client.get("/v1/stars/me", headers=rewards.headers(volunteer_id=vid))).json()
    assert star["record"]["no_shows"] == 1


async def test_concurrent_redemptions_never_overdraw(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(hours_record(vid, 10), subject=vid)  # 100 points
    await rewards.settle(start + 1)
    admin = rewards.headers(Role.COUNTY_ADMIN, scope_path="/c")
    benefit = await rewards.client.post("/v1/benefits", json={"name": "公交卡充值30元", "cost_points": 30, "stock": 50}, headers=admin)
    assert benefit.status_code == 201, benefit.text
    bid = benefit.json()["benefit_id"]
    me = rewards.headers(volunteer_id=vid)
    answers = await asyncio.gather(*[
        rewards.client.post("/v1/redemptions", json={"benefit_id": bid, "quantity": 1}, headers=me) for _ in range(8)
    ])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 3 + [409] * 5, [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()["detail"]
    assert refused["field"] == "quantity" and "积分不足" in refused["message"]
    assert await rewards.balance(f"volunteer:{vid}") == 10.0
    [stock] = await rewards.sql("SELECT stock FROM benefits WHERE benefit_id = $1::uuid", bid)
    assert stock["stock"] == 47
    assert (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()["ok"]
    again = await rewards.client.post("/v1/redemptions", json={"benefit_id": bid, "quantity": 1, "idempotency_key": "k1"}, headers=me)
    assert again.status_code == 409
    bad = await rewards.client.post("/v1/redemptions", json={"benefit_id": "not-a-uuid"}, headers=me)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "benefit_id"


async def test_stock_runs_out_before_points_do(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(hours_record(vid, 30), subject=vid)
    await rewards.settle(start + 1)
    admin = rewards.headers(Role.OPERATOR)
    bid = (await rewards.client.post("/v1/benefits", json={"name": "体检套餐", "cost_points": 10, "stock": 2}, headers=admin)).json()["benefit_id"]
    me = rewards.headers(volunteer_id=vid)
    answers = await asyncio.gather(*[rewards.client.post("/v1/redemptions", json={"benefit_id": bid}, headers=me) for _ in range(4)])
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409]
    assert await rewards.balance(f"volunteer:{vid}") == 280.0


async def test_leaderboards_rank_within_an_org_unit_and_model_volunteers_are_named_once(rewards):
    town = f"/c/{uid('town-')}"
    a, b, c = uid("v-"), uid("v-"), uid("v-")
    start = await rewards.processed()
    for vid, path, name, hours in ((a, f"{town}/s1", "张**", 5), (b, f"{town}/s2", "李**", 9), (c, "/c/elsewhere/s3", "赵**", 50)):
        await rewards.publish(state(vid, path, name), subject=vid)
        await rewards.publish(hours_record(vid, hours), subject=vid)
    await rewards.settle(start + 6)
    month = now().strftime("%Y-%m")
    board = await rewards.client.get("/v1/leaderboards", params={"org_path": town, "period": month}, headers=rewards.headers(volunteer_id=a))
    assert board.status_code == 200, board.text
    assert [(r["volunteer_id"], r["total"]) for r in board.json()["ranking"]] == [(b, 90.0), (a, 50.0)]
    assert board.json()["ranking"][0]["display_name"] == "李**"
    hours_board = await rewards.client.get("/v1/leaderboards", params={"org_path": f"{town}/s1", "period": month[:4], "unit": "hours"},
                                           headers=rewards.headers(volunteer_id=a))
    assert [r["volunteer_id"] for r in hours_board.json()["ranking"]] == [a]
    bad = await rewards.client.get("/v1/leaderboards", params={"period": "2026-13"}, headers=rewards.headers(volunteer_id=a))
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "period"

    town_admin = rewards.headers(Role.TOWN_ADMIN, scope_path=town)
    named = await rewards.client.post("/v1/commendations/model-volunteers", json={"month": month, "org_path": town, "count": 10}, headers=town_admin)
    assert named.status_code == 201 and [r["subject_id"] for r in named.json()] == [b, a]
    again = await rewards.client.post("/v1/commendations/model-volunteers", json={"month": month, "org_path": town}, headers=town_admin)
    assert [r["commendation_id"] for r in again.json()] == [r["commendation_id"] for r in named.json()]
    outside = await rewards.client.post("/v1/commendations/model-volunteers", json={"month": month, "org_path": "/c/elsewhere"}, headers=town_admin)
    assert outside.status_code == 403 and outside.json()["detail"]["field"] == "org_path"
    brand = await rewards.client.post("/v1/commendations", json={
        "kind": "service_brand", "period": month[:4], "org_path": town, "subject_id": "brand-1", "subject_name": "红袖标巡防队",
        "citation": "全年巡防无事故"}, headers=town_admin)
    assert brand.status_code == 201 and brand.json()["subject_name"] == "红袖标巡防队"
    listed = await rewards.client.get("/v1/commendations", params={"org_path": town}, headers=rewards.headers(volunteer_id=a))
    assert {r["kind"] for r in listed.json()} == {"model_volunteer", "service_brand"}


async def test_access_is_checked_per_principal(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(state(vid, "/c/t1/s1", "钱**"), subject=vid)
    await rewards.settle(start + 1)
    assert (await rewards.client.get("/v1/ledger/mine")).status_code == 401
    assert (await rewards.client.get("/v1/ledger/mine", headers=rewards.headers(Role.COUNTY_ADMIN, scope_path="/c"))).status_code == 403
    assert (await rewards.client.get(f"/v1/balances/{vid}", headers=rewards.headers(Role.TOWN_ADMIN, scope_path="/c/t2"))).status_code == 403
    assert (await rewards.client.get(f"/v1/balances/{vid}", headers=rewards.headers(Role.TOWN_ADMIN, scope_path="/c/t1"))).status_code == 200
    assert (await rewards.client.get(f"/v1/balances/{vid}", headers=rewards.headers(volunteer_id=uid()))).status_code == 403
    assert (await rewards.client.post("/v1/rules", json={}, headers=rewards.headers(volunteer_id=vid))).status_code == 403


async def test_values_postgres_cannot_store_are_a_4xx_not_a_500(rewards):
    me = rewards.headers(volunteer_id="v-nul")
    nul = await rewards.client.get("/v1/leaderboards", params={"period": "2026", "org_path": "/c/\x00"}, headers=me)
    assert nul.status_code == 422
    huge = await rewards.client.get("/v1/ledger/mine", params={"before_seq": 2**70}, headers=me)
    assert huge.status_code == 422
    staff = rewards.headers(Role.OPERATOR)
    assert (await rewards.client.get("/v1/stars/a%00b", headers=staff)).status_code in (404, 422)


async def test_the_periodic_sweep_announces_star_changes_by_itself(stack):
    from tests.rewards.conftest import rewards_service

    async with rewards_service(stack, "sweep", star_sweep_interval_s="0.3") as service:
        vid = uid("v-")
        await service.publish(hours_record(vid, 30), subject=vid)

        async def pending():
            rows = await service.sql("SELECT pending_star FROM volunteer_standing WHERE volunteer_id = $1", vid)
            return rows and rows[0]["pending_star"] == 2
        await eventually(pending, timeout_s=30, message="the sweep announced 2 stars")
