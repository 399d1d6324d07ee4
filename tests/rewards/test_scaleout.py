"""Two consumers credit at once without queueing on the alliance's issuing accounts or a reporter's daily tip count,
the daily cap stays exact, and the audit still balances."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from shouwang_dev.testing import running_app
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import ServiceHoursRecorded
from shouwang_shared.contracts.intel import Reporter, TipSubmitted
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import new_event

from rewards.config import RewardsSettings
from rewards.crediting import _count_new_tips, credit_facts
from rewards.main import create_app
from tests.rewards.conftest import now, uid


def tips_of(vid: str, n: int) -> list[TipSubmitted]:
    """`n` fraud tips of one volunteer, submitted now (10 pending points each while under the daily cap of 5)."""
    return [TipSubmitted(tip_id=uid("tip-"), category="fraud", channel="app", reporter=Reporter(kind="volunteer", volunteer_id=vid),
                         submitted_at=now(), text_length=42) for _ in range(n)]


def events_of(facts) -> list:
    return [new_event(source=f.SOURCE, type=f.TYPE, subject=uid("k-"), data=f) for f in facts]


def facts_of(vid: str):
    """A tip and a shift of one volunteer: credits from both issuing accounts (points and hours)."""
    tip = TipSubmitted(tip_id=uid("tip-"), category="fraud", channel="app", reporter=Reporter(kind="volunteer", volunteer_id=vid),
                       submitted_at=now(), text_length=42)
    shift = ServiceHoursRecorded(record_id=uid("h-"), assignment_id=uid("a-"), volunteer_id=vid, operation_id=uid("op-"), post_id=uid("p-"),
                                 hours=2, difficulty=1, risk=1, started_at=now() - timedelta(hours=2), ended_at=now(), org_path="/c/t1/s1")
    return [new_event(source=f.SOURCE, type=f.TYPE, subject=vid, data=f) for f in (tip, shift)]


async def issued(rewards) -> tuple[float, float]:
    """What the alliance has issued so far (the sum of its issuing accounts' slots), points and hours."""
    return await rewards.balance("alliance:points_issued"), await rewards.balance("alliance:hours_issued", "hours")


async def test_two_consumers_credit_different_volunteers_without_waiting_on_each_other(rewards):
    first, second = uid("v-"), uid("v-")
    before = await issued(rewards)
    sessions = rewards.app.state.runtime.sessions
    async with sessions() as held, held.begin():
        await credit_facts(held, facts_of(first))  # posted, not committed: its issuing-account rows stay locked
        async with sessions() as other, other.begin():
            await (await raw_connection(other)).execute("SET LOCAL lock_timeout = '3s'")  # waiting on `held` would fail here
            await credit_facts(other, facts_of(second))
        assert await rewards.balance(f"pending:volunteer:{second}") == 10.0  # committed while the first is still open
        assert await rewards.balance(f"pending:volunteer:{first}") == 0.0
    for vid in (first, second):
        assert await rewards.balance(f"pending:volunteer:{vid}") == 10.0  # fraud tip, pending review
        assert await rewards.balance(f"volunteer:{vid}") == 20.0  # 2 h × 10
        assert await rewards.balance(f"volunteer:{vid}", "hours") == 2.0
    after = await issued(rewards)
    assert (after[0] - before[0], after[1] - before[1]) == (-60.0, -4.0)  # the issuing accounts' totals moved by exactly what was credited
    check = (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()
    assert check["ok"], check["problems"]
    [slots] = await rewards.sql("SELECT count(*) AS n FROM balances WHERE account = 'alliance:points_issued' AND unit = 'points'")
    assert slots["n"] == 8


async def test_a_posting_waits_only_when_every_slot_is_held(rewards):
    sessions = rewards.app.state.runtime.sessions
    async with sessions() as held, held.begin():
        await (await raw_connection(held)).execute(
            "SELECT 1 FROM balances WHERE account = 'alliance:points_issued' AND unit = 'points' FOR UPDATE"
        )
        async with sessions() as other:
            try:
                async with other.begin():
                    await (await raw_connection(other)).execute("SET LOCAL lock_timeout = '500ms'")
                    await credit_facts(other, facts_of(uid("v-")))
                raise AssertionError("posted while every slot of the issuing account was locked")
            except asyncpg.LockNotAvailableError:
                pass
    check = (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()
    assert check["ok"], check["problems"]


async def test_two_replicas_of_the_consumer_group_drain_a_stream_and_the_ledger_balances(rewards, stack):
    env = stack.service_env("rewards", rewards.database_url, rewards.prefix, star_sweep_interval_s="0", run_relay="false")
    replica = create_app(RewardsSettings(**{k.lower(): v for k, v in env.items()}))
    volunteers = [uid("v-") for _ in range(60)]
    before = await issued(rewards)
    start = await rewards.processed()
    async with running_app(replica):
        for vid in volunteers:
            for event in facts_of(vid):
                topic = TipSubmitted.TOPIC if event.type == TipSubmitted.TYPE else ServiceHoursRecorded.TOPIC
                await rewards.producer.send(f"{rewards.prefix}{topic}", event.to_bytes(), key=event.id.encode())
        await rewards.producer.flush()
        await rewards.settle(start + 2 * len(volunteers), timeout_s=60)
    rows = await rewards.sql(
        "SELECT account, unit, balance FROM balances WHERE account = ANY($1::text[])",
        [f"{kind}:{vid}" for vid in volunteers for kind in ("volunteer", "pending:volunteer")],
    )
    assert sum(float(r["balance"]) for r in rows if r["unit"] == "points") == 30.0 * len(volunteers)
    assert sum(float(r["balance"]) for r in rows if r["unit"] == "hours") == 2.0 * len(volunteers)
    after = await issued(rewards)
    assert (after[0] - before[0], after[1] - before[1]) == (-30.0 * len(volunteers), -2.0 * len(volunteers))
    check = (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()
    assert check["ok"], check["problems"]


async def test_a_fetch_counts_a_reporters_tips_without_waiting_for_another_fetch_and_the_daily_cap_stays_exact(rewards):
    vid = uid("v-")
    first, second = tips_of(vid, 3), tips_of(vid, 3)
    sessions = rewards.app.state.runtime.sessions
    async with sessions() as held, held.begin():
        await credit_facts(held, events_of(first))  # not committed: its postings hold the reporter's balance rows
        async with sessions() as other, other.begin():
            await (await raw_connection(other)).execute("SET LOCAL lock_timeout = '3s'")  # waiting on `held` would fail here
            counts = await _count_new_tips(other, second)
        assert [c.nth for c in counts.values()] == [4, 5, 6]  # counted after the first fetch's three, while it is still open
    async with sessions() as other, other.begin():
        await credit_facts(other, events_of(second))
    assert await rewards.balance(f"pending:volunteer:{vid}") == 50.0  # five tips under the cap, the sixth earns nothing
    rows = await rewards.sql("SELECT tip_id, nth_today, scored FROM tip_submissions WHERE reporter = $1 ORDER BY nth_today", f"volunteer:{vid}")
    assert [(r["nth_today"], r["scored"]) for r in rows] == [(n, n <= 5) for n in range(1, 7)]
    [day] = await rewards.sql("SELECT tips FROM tip_days WHERE reporter = $1", f"volunteer:{vid}")
    assert day["tips"] == 6


async def test_a_fetch_retried_after_its_count_committed_counts_its_tips_once(rewards):
    vid = uid("v-")
    tips = events_of(tips_of(vid, 4))
    sessions = rewards.app.state.runtime.sessions
    with pytest.raises(RuntimeError):
        async with sessions() as failed, failed.begin():
            await credit_facts(failed, tips)
            raise RuntimeError("the fetch's business transaction fails after its count committed")
    async with sessions() as retried, retried.begin():
        await credit_facts(retried, [*tips, *events_of(tips_of(vid, 2))])
    [day] = await rewards.sql("SELECT tips FROM tip_days WHERE reporter = $1", f"volunteer:{vid}")
    assert day["tips"] == 6  # the four tips kept their places 1-4; the two new ones are 5 and 6
    assert await rewards.balance(f"pending:volunteer:{vid}") == 50.0


async def test_fetches_counting_the_same_tips_at_once_count_each_tip_once(rewards):
    vid = uid("v-")
    tips = tips_of(vid, 3)
    sessions = rewards.app.state.runtime.sessions

    async def count() -> dict:
        async with sessions() as session, session.begin():
            return await _count_new_tips(session, tips)

    counts = await asyncio.gather(count(), count(), count())  # a replayed fetch racing the first: each tip is claimed once
    assert [{t: c.nth for t, c in one.items()} for one in counts] == [{t.tip_id: n for n, t in enumerate(tips, 1)}] * 3
    [day] = await rewards.sql("SELECT tips FROM tip_days WHERE reporter = $1", f"volunteer:{vid}")
    assert day["tips"] == 3
