"""Issue #23: unreviewed tip points are pending (not spendable, claimable or ranked), and Kafka never links a claim to a tip."""

from __future__ import annotations

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.auth import Role
from shouwang_shared.contracts.intel import Reporter, TipReviewed
from shouwang_shared.contracts.rewards import LedgerEntryPosted

from tests.rewards.conftest import now, uid
from tests.rewards.test_bank import state
from tests.rewards.test_crediting import outcome, tip, volunteer

SERVICE = {"sub": "gateway"}


async def claim(rewards, claim_ref: str, **target):
    """What the gateway does once intel has checked the receipt code and secret."""
    return await rewards.client.post("/internal/v1/claims", json={"claim_ref": claim_ref, **target}, headers=rewards.headers(Role.SERVICE, **SERVICE))


async def test_an_anonymous_tip_claimed_at_once_gets_nothing_and_its_rejection_drives_nothing_negative(rewards):
    claim_ref, vid = uid("claim-"), uid("v-")
    anonymous = Reporter(kind="anonymous", claim_ref=claim_ref)
    start = await rewards.processed()
    fact = tip("", "drugs", reporter=anonymous)
    await rewards.publish(fact, subject=fact.tip_id)
    await rewards.settle(start + 1)

    claimed = await claim(rewards, claim_ref, volunteer_id=vid)
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["points"] == 0.0 and claimed.json()["pending_points"] == 20.0
    assert await rewards.balance(f"volunteer:{vid}") == 0.0

    await rewards.publish(TipReviewed(tip_id=fact.tip_id, verdict="rejected", reason="查无此事", category="drugs", reporter=anonymous),
                          subject=fact.tip_id)
    await rewards.settle(start + 2)
    negative = await rewards.sql("SELECT account, balance FROM balances WHERE balance < 0 AND account NOT LIKE 'alliance:%'")
    assert negative == []
    assert await rewards.balance(f"claim:{claim_ref}") == 0.0 and await rewards.balance(f"pending:claim:{claim_ref}") == 0.0
    assert (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()["ok"]


async def test_a_hundred_junk_tips_leave_the_redeemable_balance_unchanged(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    junk = [tip(vid, "fugitive") for _ in range(100)]
    for fact in junk:
        await rewards.publish(fact, subject=fact.tip_id)
    await rewards.settle(start + 100, timeout_s=60)

    me = rewards.headers(volunteer_id=vid)
    held = (await rewards.client.get("/v1/balances/me", headers=me)).json()
    assert held["points"] == 0.0
    assert held["pending_points"] == 5 * 20.0  # the daily cap: five tips a day earn pending points, the rest none
    assert held["tips_today"] == {"tips": 100, "cap": 5, "over_cap": 95}
    bid = (await rewards.client.post("/v1/benefits", json={"name": "加油卡50元", "cost_points": 20, "stock": 10},
                                     headers=rewards.headers(Role.OPERATOR))).json()["benefit_id"]
    spent = await rewards.client.post("/v1/redemptions", json={"benefit_id": bid}, headers=me)
    assert spent.status_code == 409 and spent.json()["detail"]["code"] == "insufficient_points"

    for fact in junk:
        await rewards.publish(TipReviewed(tip_id=fact.tip_id, verdict="rejected", reason="重复举报，内容不实", category="fugitive",
                                          reporter=volunteer(vid)), subject=fact.tip_id)
    await rewards.settle(start + 200, timeout_s=60)
    assert await rewards.balance(f"volunteer:{vid}") == 0.0 and await rewards.balance(f"pending:volunteer:{vid}") == 0.0


async def test_a_verified_case_pays_its_verification_bonus_once_not_per_duplicate_tip(rewards):
    case_id = uid("case-")
    reporters = [uid("v-") for _ in range(3)]
    start = await rewards.processed()
    tips = [tip(vid, "fraud") for vid in reporters]  # three neighbours report the same scam call
    for fact in tips:
        await rewards.publish(fact, subject=fact.tip_id)
    for fact, vid in zip(tips, reporters, strict=True):
        await rewards.publish(TipReviewed(tip_id=fact.tip_id, case_id=case_id, verdict="verified", quality=2, category="fraud",
                                          reporter=volunteer(vid), first_tip_id=tips[0].tip_id), subject=fact.tip_id)
    await rewards.settle(start + 6)
    bonuses = await rewards.sql("SELECT credit_account, amount FROM ledger_entries WHERE rule_line = 'tip.verified' AND effect_key LIKE $1",
                                f"case:{case_id}|%")
    assert [(r["credit_account"], float(r["amount"])) for r in bonuses] == [(f"volunteer:{reporters[0]}", 20.0)]
    assert [await rewards.balance(f"volunteer:{vid}") for vid in reporters] == [10 + 20.0, 10.0, 10.0]  # each tip's own points, verified


async def test_no_ledger_message_carries_the_payout_target_or_the_claim_ref(rewards):
    claim_ref = uid("claim-")
    anonymous = Reporter(kind="anonymous", claim_ref=claim_ref)
    payout_target = "支付宝 138 0571 2468 王建国"
    case_id, witness = uid("case-"), uid("v-")
    start = await rewards.processed()
    fact = tip("", "fugitive", reporter=anonymous)
    await rewards.publish(fact, subject=fact.tip_id)
    await rewards.publish(TipReviewed(tip_id=fact.tip_id, case_id=case_id, verdict="verified", quality=3, category="fugitive",
                                      reporter=anonymous), subject=fact.tip_id)
    await rewards.publish(outcome(case_id, anonymous, category="fugitive"), subject=case_id)
    await rewards.settle(start + 3)

    paid = await claim(rewards, claim_ref, payout_target=payout_target)
    assert paid.status_code == 201, paid.text
    assert paid.json()["points"] == 20 + 40 + 500.0
    later = tip(witness, "drugs")  # a later entry: once it is on the topic, everything before it is too
    await rewards.publish(later, subject=later.tip_id)
    await rewards.publish(TipReviewed(tip_id=later.tip_id, verdict="verified", category="drugs", reporter=volunteer(witness)), subject=later.tip_id)

    topic = f"{rewards.prefix}{LedgerEntryPosted.TOPIC}"

    async def witnessed():
        msgs = await read_topic(rewards.stack.bootstrap_servers, topic)
        return msgs if any(m.subject == f"volunteer:{witness}" and m.data["amount"] > 0 and "核实" in m.data["reason"]
                           for _, m, _ in msgs) else None
    messages = await eventually(witnessed, message="the witness entry on rewards.ledger.v1")
    for key, message, _ in messages:
        raw = (key or b"").decode() + message.to_bytes().decode()
        assert claim_ref not in raw and "0571 2468" not in raw and "王建国" not in raw, raw  # not bare digits: UUIDs hold them
    assert paid.json()["target"] == f"payout:{paid.json()['claim_id']}"
    stored = await rewards.sql("SELECT target, target_sealed FROM claims WHERE claim_ref = $1", claim_ref)
    assert [r["target"] for r in stored] == [f"payout:{paid.json()['claim_id']}"] and b"0571 2468" not in stored[0]["target_sealed"]
    accounts = await rewards.sql("SELECT 1 FROM balances WHERE account LIKE '%0571 2468%' OR account LIKE '%王建国%'")
    assert accounts == []
    reveal = f"/internal/v1/claims/{paid.json()['claim_id']}/payout-target"
    refused = await rewards.client.post(reveal, json={"reason": "核对领取信息"}, headers=rewards.headers(Role.SERVICE, **SERVICE))
    assert refused.status_code == 403
    revealed = await rewards.client.post(reveal, json={"reason": "按县级奖励审批单 2026-118 发放"}, headers=rewards.headers(Role.OPERATOR, sub="op-zhou"))
    assert revealed.status_code == 200 and revealed.json()["payout_target"] == payout_target and revealed.json()["points"] == 560.0
    [audit] = await rewards.sql("SELECT revealed_by, reason FROM payout_reveals WHERE claim_id = $1::uuid", paid.json()["claim_id"])
    assert audit["revealed_by"] == "op-zhou" and "2026-118" in audit["reason"]
    garbled = await rewards.client.post("/internal/v1/claims/not-a-claim/payout-target", json={"reason": "核对领取信息"},
                                        headers=rewards.headers(Role.OPERATOR))
    assert garbled.status_code == 422 and garbled.json()["detail"]["field"] == "claim_id"


async def test_leaderboards_and_stars_leave_out_unreviewed_tip_points(rewards):
    station = f"/c/{uid('town-')}/s1"
    reporter, other = uid("v-"), uid("v-")
    start = await rewards.processed()
    await rewards.publish(state(reporter, station, "陈**"), subject=reporter)
    await rewards.publish(state(other, station, "刘**"), subject=other)
    fact = tip(reporter, "drugs")
    await rewards.publish(fact, subject=fact.tip_id)
    await rewards.settle(start + 3)

    month = now().strftime("%Y-%m")
    neighbour = rewards.headers(volunteer_id=other)
    board = await rewards.client.get("/v1/leaderboards", params={"org_path": station, "period": month}, headers=neighbour)
    assert board.status_code == 200 and board.json()["ranking"] == []  # no +20 jump tells the station who just reported
    star = await rewards.client.get(f"/v1/stars/{reporter}", headers=rewards.headers(Role.COUNTY_ADMIN, scope_path="/c"))
    assert star.json()["record"]["points"] == 0.0

    await rewards.publish(TipReviewed(tip_id=fact.tip_id, verdict="verified", quality=1, category="drugs", reporter=volunteer(reporter)),
                          subject=fact.tip_id)
    await rewards.settle(start + 4)
    board = await rewards.client.get("/v1/leaderboards", params={"org_path": station, "period": month}, headers=neighbour)
    assert [(r["volunteer_id"], r["total"]) for r in board.json()["ranking"]] == [(reporter, 20 + 10.0)]


async def test_rejecting_a_tip_credited_before_pending_accounts_takes_back_at_most_what_is_left(rewards):
    vid, tip_id = uid("v-"), uid("tip-")
    account = f"volunteer:{vid}"
    # what the old code posted: the tip's points straight onto the spendable account
    await rewards.sql(
        "INSERT INTO ledger_entries (entry_id, effect_key, debit_account, credit_account, volunteer_id, unit, amount, reason, rule_version, "
        "rule_line, source_event_id) VALUES (gen_random_uuid(), $1, 'alliance:points_issued', $2, $3, 'points', 20, '提交涉毒线索（临时积分）', "
        "'2026.1', 'tip.report', $4)", f"tip:{tip_id}|tip.report", account, vid, uid("old-event-"),
    )
    await rewards.sql("INSERT INTO balances (account, unit, balance) VALUES ($1, 'points', 20)", account)
    await rewards.sql("UPDATE balances SET balance = balance - 20 WHERE account = 'alliance:points_issued' AND unit = 'points' AND slot = 0")
    bid = (await rewards.client.post("/v1/benefits", json={"name": "理发券", "cost_points": 15, "stock": 5},
                                     headers=rewards.headers(Role.OPERATOR))).json()["benefit_id"]
    spent = await rewards.client.post("/v1/redemptions", json={"benefit_id": bid}, headers=rewards.headers(volunteer_id=vid))
    assert spent.status_code == 201, spent.text

    start = await rewards.processed()
    await rewards.publish(TipReviewed(tip_id=tip_id, verdict="rejected", reason="查无此事", category="drugs", reporter=volunteer(vid)),
                          subject=tip_id)
    await rewards.settle(start + 1)
    assert await rewards.balance(account) == 0.0  # 5 left, 5 taken back: never below zero
    [reversal] = await rewards.sql("SELECT amount FROM ledger_entries WHERE effect_key = $1", f"tip:{tip_id}|tip.report.revoked")
    assert float(reversal["amount"]) == 5
    assert (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()["ok"]
