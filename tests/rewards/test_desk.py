"""The staff desk: tip points pending review and redemptions across a staff member's org scope, with hand-over and decline."""

from __future__ import annotations

import asyncio

from shouwang_shared.auth import Role
from shouwang_shared.contracts.intel import TipReviewed

from tests.rewards.conftest import uid
from tests.rewards.test_bank import hours_record, state
from tests.rewards.test_crediting import tip, volunteer


async def _volunteer_with_points(rewards, org_path: str, hours: float = 10) -> str:
    """A volunteer under `org_path` holding hours × 10 points."""
    vid = uid("v-")
    start = await rewards.processed()
    await rewards.publish(state(vid, org_path, "李**"), subject=vid)
    await rewards.publish(hours_record(vid, hours), subject=vid)
    await rewards.settle(start + 2)
    return vid


async def _benefit(rewards, cost: int = 30, stock: int = 5) -> str:
    made = await rewards.client.post("/v1/benefits", headers=rewards.headers(Role.OPERATOR),
                                     json={"name": uid("公交卡-")[:20], "cost_points": cost, "stock": stock})
    assert made.status_code == 201, made.text
    return made.json()["benefit_id"]


async def _redeem(rewards, vid: str, benefit_id: str, quantity: int = 1) -> dict:
    made = await rewards.client.post("/v1/redemptions", headers=rewards.headers(volunteer_id=vid),
                                     json={"benefit_id": benefit_id, "quantity": quantity})
    assert made.status_code == 201, made.text
    return made.json()


def _station(path: str) -> dict:
    return {"role": Role.STATION_ADMIN, "scope_path": path}


async def test_a_station_admin_lists_only_redemptions_of_their_subtree_and_filters_them(rewards):
    town = f"/c/{uid('t')[:9]}"
    mine, other = await _volunteer_with_points(rewards, f"{town}/s1/g1"), await _volunteer_with_points(rewards, f"{town}/s2")
    benefit = await _benefit(rewards)
    ours, theirs = await _redeem(rewards, mine, benefit), await _redeem(rewards, other, benefit)
    station = rewards.headers(**_station(f"{town}/s1"))

    listed = await rewards.client.get("/v1/redemptions", headers=station)
    assert listed.status_code == 200, listed.text
    assert [r["redemption_id"] for r in listed.json()] == [ours["redemption_id"]]
    [row] = listed.json()
    assert row["status"] == "requested" and row["org_path"] == f"{town}/s1/g1" and row["display_name"] == "李**" and row["points"] == 30
    town_admin = rewards.headers(Role.TOWN_ADMIN, scope_path=town)
    both = (await rewards.client.get("/v1/redemptions", headers=town_admin, params={"org_path": town})).json()
    assert {r["redemption_id"] for r in both} == {ours["redemption_id"], theirs["redemption_id"]}
    assert (await rewards.client.get("/v1/redemptions", headers=town_admin, params={"org_path": town, "status": "declined"})).json() == []
    assert (await rewards.client.get("/v1/redemptions", headers=town_admin, params={"org_path": town, "period": "1999-01"})).json() == []

    outside = await rewards.client.get("/v1/redemptions", headers=station, params={"org_path": f"{town}/s2"})
    assert outside.status_code == 403 and outside.json()["detail"]["field"] == "org_path"
    denied = await rewards.client.post(f"/v1/redemptions/{theirs['redemption_id']}/handover", headers=station)
    assert denied.status_code == 403 and denied.json()["detail"]["field"] == "redemption_id"
    refused = await rewards.client.post(f"/v1/redemptions/{theirs['redemption_id']}/decline", headers=station, json={"reason": "库存有误"})
    assert refused.status_code == 403
    assert await rewards.balance(f"volunteer:{other}") == 70  # nothing refunded by the refused decline
    grid = await rewards.client.get("/v1/redemptions", headers=rewards.headers(Role.GRID_WORKER, scope_path=town))
    assert grid.status_code == 403
    volunteer_lists = await rewards.client.get("/v1/redemptions", headers=rewards.headers(volunteer_id=mine))
    assert volunteer_lists.status_code == 403


async def test_hand_over_is_idempotent_and_a_handed_over_redemption_cannot_be_declined(rewards):
    station_path = f"/c/{uid('t')[:9]}/s1"
    vid = await _volunteer_with_points(rewards, station_path)
    made = await _redeem(rewards, vid, await _benefit(rewards))
    station = rewards.headers(**_station(station_path))
    first, again = [await rewards.client.post(f"/v1/redemptions/{made['redemption_id']}/handover", headers=station) for _ in range(2)]
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == again.json()["status"] == "handed_over"
    assert first.json()["decided_at"] == again.json()["decided_at"]
    assert first.json()["decided_at"].endswith("+00:00") and made["created_at"].endswith("+00:00")  # times as rewards always wrote them
    late = await rewards.client.post(f"/v1/redemptions/{made['redemption_id']}/decline", headers=station, json={"reason": "迟到的拒绝"})
    assert late.status_code == 409 and late.json()["detail"]["field"] == "redemption_id"
    assert await rewards.balance(f"volunteer:{vid}") == 70


async def test_a_decline_refunds_the_points_exactly_once_even_when_sent_concurrently(rewards):
    station_path = f"/c/{uid('t')[:9]}/s1"
    vid = await _volunteer_with_points(rewards, station_path)
    benefit = await _benefit(rewards, cost=30, stock=2)
    made = await _redeem(rewards, vid, benefit, quantity=2)
    assert await rewards.balance(f"volunteer:{vid}") == 40
    station = rewards.headers(**_station(station_path))
    url = f"/v1/redemptions/{made['redemption_id']}/decline"
    answers = await asyncio.gather(*[rewards.client.post(url, headers=station, json={"reason": f"站点暂停发放 {i}"}) for i in range(5)])
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["decline_reason"] for a in answers}) == 1  # the first decision stands
    assert await rewards.balance(f"volunteer:{vid}") == 100
    refunds = await rewards.sql("SELECT amount, corrects_entry_id::text FROM ledger_entries WHERE effect_key = $1",
                                f"redemption:{made['redemption_id']}|redemption.refund")
    assert len(refunds) == 1 and float(refunds[0]["amount"]) == 60 and refunds[0]["corrects_entry_id"] == made["entry_id"]
    [benefit_row] = await rewards.sql("SELECT stock FROM benefits WHERE benefit_id = $1::uuid", benefit)
    assert benefit_row["stock"] == 2  # stock put back
    handover = await rewards.client.post(f"/v1/redemptions/{made['redemption_id']}/handover", headers=station)
    assert handover.status_code == 409
    check = await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))
    assert check.status_code == 200 and check.json()["ok"] is True, check.text
    mine = (await rewards.client.get("/v1/ledger/mine", headers=rewards.headers(volunteer_id=vid))).json()["items"]
    assert mine[0]["rule_line"] == "redemption.refund" and "站点暂停发放" in mine[0]["reason"] and mine[0]["amount"] == 60
    [own] = (await rewards.client.get("/v1/redemptions/mine", headers=rewards.headers(volunteer_id=vid))).json()
    assert own["status"] == "declined" and own["decline_reason"] == answers[0].json()["decline_reason"]
    assert own["refund_entry_id"] == answers[0].json()["refund_entry_id"] and "decided_by" not in own  # who decided stays staff-side


async def test_bad_decisions_are_4xx_naming_the_field(rewards):
    station = rewards.headers(**_station("/c/x/s"))
    bad_id = await rewards.client.post("/v1/redemptions/not-a-uuid/handover", headers=station)
    assert bad_id.status_code == 422 and bad_id.json()["detail"]["field"] == "redemption_id"
    missing = await rewards.client.post(f"/v1/redemptions/{uid()}/handover", headers=station)
    assert missing.status_code == 404 and missing.json()["detail"]["field"] == "redemption_id"
    no_reason = await rewards.client.post(f"/v1/redemptions/{uid()}/decline", headers=station, json={})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    bad_status = await rewards.client.get("/v1/redemptions", headers=station, params={"status": "lost"})
    assert bad_status.status_code == 422 and "status" in bad_status.text
    bad_period = await rewards.client.get("/v1/ledger/pending", headers=station, params={"period": "May"})
    assert bad_period.status_code == 422 and "period" in bad_period.text


async def test_pending_tip_points_are_listed_in_scope_with_their_review_status_and_anonymous_reporters_never(rewards):
    town = f"/c/{uid('t')[:9]}"
    vid = await _volunteer_with_points(rewards, f"{town}/s1")
    elsewhere = await _volunteer_with_points(rewards, f"{town}/s2")
    start = await rewards.processed()
    waiting, verified, foreign = tip(vid, "fraud"), tip(vid, "drugs"), tip(elsewhere, "fraud")
    for fact in (waiting, verified, foreign):
        await rewards.publish(fact, subject=fact.tip_id)
    await rewards.publish(TipReviewed(tip_id=verified.tip_id, verdict="verified", quality=1, category="drugs", reporter=volunteer(vid)),
                          subject=verified.tip_id)
    await rewards.settle(start + 4)
    station = rewards.headers(**_station(f"{town}/s1"))

    pending = (await rewards.client.get("/v1/ledger/pending", headers=station, params={"status": "pending"})).json()
    assert [(p["source"], p["status"]) for p in pending] == [(f"tip:{waiting.tip_id}", "pending")]
    assert pending[0]["volunteer_id"] == vid and pending[0]["amount"] == 10 and pending[0]["org_path"] == f"{town}/s1"
    every = (await rewards.client.get("/v1/ledger/pending", headers=station)).json()
    released = await rewards.client.get("/v1/ledger/pending", headers=station, params={"status": "released"})
    assert [p["source"] for p in released.json()] == [f"tip:{verified.tip_id}"] and released.json()[0]["settled_at"]
    assert {p["source"]: p["status"] for p in every} == {f"tip:{waiting.tip_id}": "pending", f"tip:{verified.tip_id}": "released"}
    county = (await rewards.client.get("/v1/ledger/pending", headers=rewards.headers(Role.TOWN_ADMIN, scope_path=town),
                                       params={"status": "pending"})).json()
    assert {p["source"] for p in county} == {f"tip:{waiting.tip_id}", f"tip:{foreign.tip_id}"}
    assert all(p["volunteer_id"] for p in county)  # anonymous reporters' held points have no org unit and are never listed
    outside = await rewards.client.get("/v1/ledger/pending", headers=station, params={"org_path": f"{town}/s2"})
    assert outside.status_code == 403 and outside.json()["detail"]["field"] == "org_path"
