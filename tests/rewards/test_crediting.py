"""Facts published on the real topics are credited exactly once by the running rewards service."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, Reporter, TipReviewed, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended
from shouwang_shared.contracts.rewards import LedgerEntryPosted
from shouwang_shared.envelope import new_event

from rewards.crediting import credit_facts
from tests.rewards.conftest import now, uid


def volunteer(vid: str) -> Reporter:
    return Reporter(kind="volunteer", volunteer_id=vid)


def tip(vid: str, category: str = "drugs", tip_id: str | None = None, reporter: Reporter | None = None) -> TipSubmitted:
    return TipSubmitted(
        tip_id=tip_id or uid("tip-"), category=category, channel="app", reporter=reporter or volunteer(vid),
        submitted_at=now(), text_length=42,
    )


def outcome(case_id: str, first: Reporter, *, result: str = "arrest", reporters=(), category: str = "drugs") -> CaseOutcomeRecorded:
    return CaseOutcomeRecorded(
        case_id=case_id, outcome=result, category=category, first_tip_id=uid("tip-"), first_reporter=first,
        reporters=list(reporters), recorded_at=now(),
    )


async def entries(rewards, account: str, rule_line_prefix: str = ""):
    return await rewards.sql(
        "SELECT effect_key, rule_line, amount, reason, rule_version, source_event_id FROM ledger_entries "
        "WHERE (credit_account = $1 OR debit_account = $1) AND rule_line LIKE $2 || '%' ORDER BY seq",
        account, rule_line_prefix,
    )


async def test_a_replayed_or_duplicated_tip_credits_once_and_the_volunteer_sees_why(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    fact = tip(vid, "drugs")
    first = await rewards.publish(fact, subject=fact.tip_id)
    await rewards.publish(fact, subject=fact.tip_id, event=first)  # the same event again (a replay)
    await rewards.publish(fact, subject=fact.tip_id)  # the same tip again under a new event id (a producer retry)
    await rewards.settle(start + 2)

    rows = await entries(rewards, f"pending:volunteer:{vid}")
    assert len(rows) == 1 and float(rows[0]["amount"]) == 20.0
    assert rows[0]["source_event_id"] == first.id and rows[0]["rule_version"] == "2026.1"
    assert await rewards.balance(f"pending:volunteer:{vid}") == 20.0 and await rewards.balance(f"volunteer:{vid}") == 0.0

    mine = await rewards.client.get("/v1/ledger/mine", headers=rewards.headers(Role.VOLUNTEER, volunteer_id=vid))
    assert mine.status_code == 200
    [item] = mine.json()["items"]
    assert item["amount"] == 20.0 and "涉毒线索" in item["reason"] and item["source_event_id"] == first.id
    assert item["account"] == f"pending:volunteer:{vid}"
    me = await rewards.client.get("/v1/balances/me", headers=rewards.headers(Role.VOLUNTEER, volunteer_id=vid))
    assert me.json()["points"] == 0.0 and me.json()["pending_points"] == 20.0 and me.json()["tips_today"]["tips"] == 1

    async def announced():
        msgs = await read_topic(rewards.stack.bootstrap_servers, f"{rewards.prefix}{LedgerEntryPosted.TOPIC}")
        return [m for _, m, _ in msgs if m.subject == f"pending:volunteer:{vid}"]
    [posted] = await eventually(announced, message="LedgerEntryPosted on rewards.ledger.v1")
    assert posted.causationid == first.id and posted.data["balance_after"] == 20.0
    contract = LedgerEntryPosted.model_validate(posted.data)  # the pre-serialized bytes honour the contract
    assert contract.account == f"pending:volunteer:{vid}" and contract.volunteer_id == vid and contract.amount == 20.0


async def test_verified_tip_earns_its_bonus_and_a_rejected_tip_is_reversed_by_a_compensating_entry(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    good, bad = tip(vid, "fraud"), tip(vid, "other")
    for fact in (good, bad):
        await rewards.publish(fact, subject=fact.tip_id)
    await rewards.publish(TipReviewed(tip_id=good.tip_id, verdict="verified", quality=3, category="fraud", reporter=volunteer(vid)), subject=good.tip_id)
    await rewards.publish(TipReviewed(tip_id=bad.tip_id, verdict="rejected", category="other", reporter=volunteer(vid)), subject=bad.tip_id)
    await rewards.settle(start + 4)
    assert await rewards.balance(f"volunteer:{vid}") == 10 + 40  # fraud 10 released + quality-3 bonus 40; the 3 for "other" reversed
    assert await rewards.balance(f"pending:volunteer:{vid}") == 0
    [reversal] = await rewards.sql(
        "SELECT r.debit_account, r.amount, r.corrects_entry_id = o.entry_id AS corrects FROM ledger_entries r "
        "JOIN ledger_entries o ON o.effect_key = $1 WHERE r.effect_key = $2",
        f"tip:{bad.tip_id}|tip.report", f"tip:{bad.tip_id}|tip.report.revoked",
    )
    assert reversal["debit_account"] == f"pending:volunteer:{vid}" and float(reversal["amount"]) == 3 and reversal["corrects"]


async def test_two_tips_of_one_case_pay_one_case_reward_to_the_first_reporter(rewards):
    first, second = uid("v-"), uid("v-")
    case_id = uid("case-")
    start = await rewards.processed()
    t1, t2 = tip(first), tip(second)
    await rewards.publish(t1, subject=t1.tip_id)
    await rewards.publish(t2, subject=t2.tip_id)
    fact = outcome(case_id, volunteer(first), reporters=[volunteer(first), volunteer(second)])
    once = await rewards.publish(fact, subject=case_id)
    await rewards.publish(fact, subject=case_id, event=once)  # replay
    await rewards.publish(fact, subject=case_id)  # duplicate with a new event id
    await rewards.publish(outcome(case_id, volunteer(second), result="case_solved"), subject=case_id)  # a later paying outcome
    await rewards.settle(start + 5)
    assert [float(r["amount"]) for r in await entries(rewards, f"volunteer:{first}", "case.")] == [500.0]
    assert await entries(rewards, f"volunteer:{second}", "case.") == []
    assert len(await rewards.sql("SELECT 1 FROM case_rewards WHERE case_id = $1", case_id)) == 1


async def test_a_case_merge_after_payment_does_not_pay_again(rewards):
    paid_reporter, other_reporter = uid("v-"), uid("v-")
    paid_case, surviving_case = uid("case-"), uid("case-")
    start = await rewards.processed()
    await rewards.publish(outcome(paid_case, volunteer(paid_reporter)), subject=paid_case)
    await rewards.settle(start + 1)
    merge = CasesMerged(case_id=surviving_case, merged_case_ids=[paid_case], first_tip_id=uid("tip-"), first_reporter=volunteer(other_reporter))
    await rewards.publish(merge, subject=surviving_case)
    await rewards.publish(outcome(surviving_case, volunteer(other_reporter), result="case_solved"), subject=surviving_case)
    await rewards.publish(outcome(paid_case, volunteer(other_reporter), result="case_solved"), subject=paid_case)
    await rewards.settle(start + 4)
    assert len(await entries(rewards, f"volunteer:{paid_reporter}", "case.")) == 1
    assert await entries(rewards, f"volunteer:{other_reporter}", "case.") == []


async def test_cases_merged_before_payment_pay_once(rewards):
    reporter = uid("v-")
    a, b = uid("case-"), uid("case-")
    start = await rewards.processed()
    await rewards.publish(CasesMerged(case_id=b, merged_case_ids=[a], first_tip_id=uid("t-"), first_reporter=volunteer(reporter)), subject=b)
    await rewards.publish(outcome(a, volunteer(reporter)), subject=a)
    await rewards.publish(outcome(b, volunteer(reporter)), subject=b)
    await rewards.settle(start + 3)
    assert len(await entries(rewards, f"volunteer:{reporter}", "case.")) == 1


async def test_an_anonymous_reporters_reward_is_held_and_claimed_into_a_volunteer_account(rewards):
    claim_ref = uid("claim-")
    anonymous = Reporter(kind="anonymous", claim_ref=claim_ref)
    case_id, vid = uid("case-"), uid("v-")
    start = await rewards.processed()
    fact = tip("", "fugitive", reporter=anonymous)
    await rewards.publish(fact, subject=fact.tip_id)
    await rewards.publish(outcome(case_id, anonymous, category="fugitive"), subject=case_id)
    await rewards.settle(start + 2)
    assert await rewards.balance(f"claim:{claim_ref}") == 500.0 and await rewards.balance(f"pending:claim:{claim_ref}") == 20.0
    held = await rewards.client.get(f"/internal/v1/claims/{claim_ref}", headers=rewards.headers(Role.SERVICE, sub="gateway"))
    assert held.json()["points"] == 500.0 and held.json()["pending_points"] == 20.0
    assert {i["rule_line"] for i in held.json()["items"]} == {"tip.report", "case.reward"}

    refused = await rewards.client.post("/internal/v1/claims", json={"claim_ref": claim_ref, "volunteer_id": vid},
                                        headers=rewards.headers(Role.VOLUNTEER, volunteer_id=vid))
    assert refused.status_code == 403
    claimed = await rewards.client.post("/internal/v1/claims", json={"claim_ref": claim_ref, "volunteer_id": vid},
                                        headers=rewards.headers(Role.SERVICE, sub="intel"))
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["points"] == 500.0 and claimed.json()["pending_points"] == 20.0  # the tip is not reviewed yet
    assert await rewards.balance(f"claim:{claim_ref}") == 0.0
    assert await rewards.balance(f"volunteer:{vid}") == 500.0
    again = await rewards.client.post("/internal/v1/claims", json={"claim_ref": claim_ref, "volunteer_id": vid},
                                      headers=rewards.headers(Role.SERVICE, sub="intel"))
    assert again.status_code == 201 and again.json()["points"] == 0.0
    await rewards.publish(TipReviewed(tip_id=fact.tip_id, verdict="verified", category="fugitive", reporter=anonymous), subject=fact.tip_id)
    await rewards.settle(start + 3)
    verified = await rewards.client.post("/internal/v1/claims", json={"claim_ref": claim_ref, "volunteer_id": vid},
                                         headers=rewards.headers(Role.SERVICE, sub="intel"))
    assert verified.json()["points"] == 20 + 10.0 and verified.json()["pending_points"] == 0.0  # released + quality-1 bonus
    unknown = await rewards.client.post("/internal/v1/claims", json={"claim_ref": uid("nope-"), "volunteer_id": vid},
                                        headers=rewards.headers(Role.SERVICE, sub="intel"))
    assert unknown.status_code == 404 and unknown.json()["detail"]["field"] == "claim_ref"


async def test_service_hours_and_training_fill_the_alliance_bank(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    hours = ServiceHoursRecorded(
        record_id=uid("h-"), assignment_id=uid("a-"), volunteer_id=vid, operation_id=uid("op-"), post_id=uid("p-"),
        hours=4, difficulty=2, risk=3, role="organiser", started_at=now() - timedelta(hours=4), ended_at=now(), org_path="/c/t1/s1",
    )
    await rewards.publish(hours, subject=hours.assignment_id)
    await rewards.publish(hours, subject=hours.assignment_id)  # re-sent record
    training = TrainingAttended(attendance_id=uid("att-"), volunteer_id=vid, session_id=uid("s-"), level="county", topic="ethics",
                                attended_on=now().date(), org_unit_id="s1", org_path="/c/t1/s1")
    await rewards.publish(training, subject=vid)
    await rewards.settle(start + 3)
    assert await rewards.balance(f"volunteer:{vid}", "hours") == 4.0
    assert await rewards.balance(f"volunteer:{vid}", "points") == 93.6 + 8
    [standing] = await rewards.sql("SELECT org_path, shifts_completed FROM volunteer_standing WHERE volunteer_id = $1", vid)
    assert standing["org_path"] == "/c/t1/s1" and standing["shifts_completed"] == 1
    check = await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))
    assert check.json()["ok"], check.json()
    assert await rewards.balance("alliance:hours_issued", "hours") <= -4.0  # what the alliance issued, double entry


async def test_the_audit_catches_a_tampered_balance_and_entries_cannot_be_edited(rewards):
    vid = uid("v-")
    start = await rewards.processed()
    fact = tip(vid, "fraud")
    await rewards.publish(fact, subject=fact.tip_id)
    await rewards.settle(start + 1)
    await rewards.sql("UPDATE balances SET balance = balance + 1 WHERE account = $1", f"pending:volunteer:{vid}")
    try:
        check = (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()
        assert not check["ok"]
        assert {"account": f"pending:volunteer:{vid}", "unit": "points", "from_entries": 10.0, "stored": 11.0} in check["problems"]
    finally:
        await rewards.sql("UPDATE balances SET balance = balance - 1 WHERE account = $1", f"pending:volunteer:{vid}")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await rewards.sql("UPDATE ledger_entries SET amount = 999 WHERE credit_account = $1", f"pending:volunteer:{vid}")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await rewards.sql("DELETE FROM ledger_entries WHERE credit_account = $1", f"pending:volunteer:{vid}")


async def test_one_run_of_mixed_facts_is_credited_in_order_by_one_call(rewards):
    """Submissions, reviews, hours and training of one fetched run: a review reverses or releases pending points posted in the same run."""
    vid = uid("v-")
    bad, good = tip(vid, "other"), tip(vid, "fraud")
    hours = ServiceHoursRecorded(
        record_id=uid("h-"), assignment_id=uid("a-"), volunteer_id=vid, operation_id=uid("op-"), post_id=uid("p-"),
        hours=2, difficulty=1, risk=1, started_at=now() - timedelta(hours=2), ended_at=now(), org_path="/c/t2/s9",
    )
    training = TrainingAttended(attendance_id=uid("att-"), volunteer_id=vid, session_id=uid("s-"), level="town", topic="ethics",
                                attended_on=now().date(), org_unit_id="s9", org_path="/c/t2/s9")
    facts = [
        bad, hours, good,
        TipReviewed(tip_id=bad.tip_id, verdict="rejected", category="other", reporter=volunteer(vid)),
        training, bad,  # the same tip again under a new event id credits nothing more
        TipReviewed(tip_id=good.tip_id, verdict="verified", quality=1, category="fraud", reporter=volunteer(vid)),
    ]
    events = [new_event(source=f.SOURCE, type=f.TYPE, subject=vid, data=f) for f in facts]
    sessions = rewards.app.state.runtime.sessions
    async with sessions() as session, session.begin():
        await credit_facts(session, events)

    # fraud 10 released on verification + its bonus 10 + 2 h × 10 + town training 5; "other" 3 reversed from pending
    assert await rewards.balance(f"volunteer:{vid}") == 10 + 10 + 20 + 5
    assert await rewards.balance(f"pending:volunteer:{vid}") == 0
    assert await rewards.balance(f"volunteer:{vid}", "hours") == 2.0
    [reversal] = await rewards.sql(
        "SELECT r.amount, r.corrects_entry_id = o.entry_id AS corrects FROM ledger_entries r "
        "JOIN ledger_entries o ON o.effect_key = $1 WHERE r.effect_key = $2",
        f"tip:{bad.tip_id}|tip.report", f"tip:{bad.tip_id}|tip.report.revoked",
    )
    assert float(reversal["amount"]) == 3 and reversal["corrects"]
    journal = await rewards.sql("SELECT event_id FROM scored_facts WHERE event_id = ANY($1::text[]) ORDER BY seq", [e.id for e in events])
    assert [r["event_id"] for r in journal] == [e.id for e in events]  # journalled in consumption order, for a re-score
    [standing] = await rewards.sql("SELECT org_path, shifts_completed FROM volunteer_standing WHERE volunteer_id = $1", vid)
    assert standing["org_path"] == "/c/t2/s9" and standing["shifts_completed"] == 1
    check = await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))
    assert check.json()["ok"], check.json()
