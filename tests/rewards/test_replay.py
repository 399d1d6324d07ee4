"""Randomized streams keep the ledger balanced and equal to the pure model; a rule preview equals a fresh replay."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, Reporter, TipReviewed, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended
from shouwang_shared.envelope import Envelope, new_event

from rewards.scoring import Replay, RuleBook, RuleSet
from tests.rewards.conftest import now, rewards_service, uid

CATEGORIES = ["fugitive", "drugs", "fraud", "counterfeit", "public_order", "dispute", "missing_person", "other"]

reporter_choice = st.one_of(
    st.tuples(st.just("volunteer"), st.integers(0, 3)),
    st.tuples(st.just("anonymous"), st.integers(0, 1)),
)
step = st.one_of(
    # at most five tips a run: one reporter never passes the daily cap, whose order follows partitions, not this stream
    st.tuples(st.just("tip"), st.integers(0, 4), reporter_choice, st.sampled_from(CATEGORIES), st.booleans()),
    st.tuples(st.just("review"), st.integers(0, 4), st.sampled_from(["verified", "rejected"]), st.integers(1, 3)),
    st.tuples(st.just("outcome"), st.integers(0, 3), st.sampled_from(["arrest", "case_solved", "investigating"]), reporter_choice, st.lists(reporter_choice, max_size=2)),
    st.tuples(st.just("merge"), st.integers(0, 3), st.lists(st.integers(0, 3), min_size=1, max_size=2)),
    st.tuples(st.just("hours"), st.integers(0, 3), st.decimals("0", "12", places=2), st.integers(1, 3), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("training"), st.integers(0, 3), st.sampled_from(["county", "town", "village"])),
    st.tuples(st.just("again"), st.integers(0, 100), st.booleans()),
)


def build_stream(steps, run: str) -> list[tuple[type, Envelope]]:
    """Turn generated steps into envelopes (ids scoped to `run`); "again" re-sends an earlier event or fact."""
    def who(choice) -> Reporter:
        kind, i = choice
        return Reporter(kind="volunteer", volunteer_id=f"{run}-v{i}") if kind == "volunteer" else Reporter(kind="anonymous", claim_ref=f"{run}-c{i}")

    tips: dict[int, TipSubmitted] = {}
    out: list[tuple[type, Envelope]] = []
    at = now()
    for s in steps:
        payload, subject = None, None
        if s[0] == "tip":
            _, i, rep, category, attachment = s
            tips.setdefault(i, TipSubmitted(tip_id=f"{run}-t{i}", category=category, channel="app", reporter=who(rep), submitted_at=at, has_attachment=attachment))
            payload, subject = tips[i], tips[i].tip_id
        elif s[0] == "review":
            _, i, verdict, quality = s
            if i not in tips:
                continue
            t = tips[i]
            payload, subject = TipReviewed(tip_id=t.tip_id, verdict=verdict, quality=quality, category=t.category, reporter=t.reporter), t.tip_id
        elif s[0] == "outcome":
            _, c, result, first, others = s
            payload = CaseOutcomeRecorded(case_id=f"{run}-k{c}", outcome=result, category="drugs", first_tip_id="t", first_reporter=who(first),
                                          reporters=[who(o) for o in others], recorded_at=at)
            subject = f"{run}-cases"  # one key: every case fact in one partition, in order
        elif s[0] == "merge":
            _, c, merged = s
            payload = CasesMerged(case_id=f"{run}-k{c}", merged_case_ids=[f"{run}-k{m}" for m in merged], first_tip_id="t", first_reporter=who(("volunteer", 0)))
            subject = f"{run}-cases"
        elif s[0] == "hours":
            _, v, hours, difficulty, risk, organiser = s
            payload = ServiceHoursRecorded(record_id=f"{run}-h{len(out)}", assignment_id="a", volunteer_id=f"{run}-v{v}", operation_id="o", post_id="p",
                                           hours=float(hours), difficulty=difficulty, risk=risk, role="organiser" if organiser else "member",
                                           started_at=at - timedelta(hours=1), ended_at=at)
            subject = payload.volunteer_id
        elif s[0] == "training":
            _, v, level = s
            payload = TrainingAttended(attendance_id=f"{run}-tr{len(out)}", volunteer_id=f"{run}-v{v}", session_id="s", level=level, topic="skills",
                                       attended_on=at.date(), org_unit_id="s1", org_path="/c/t/s1")
            subject = payload.volunteer_id
        elif s[0] == "again" and out:
            model, earlier = out[s[1] % len(out)]
            if s[2]:
                out.append((model, earlier))  # the very same event (a replay)
            else:  # the same fact under a new event id (a producer retry)
                out.append((model, new_event(source=earlier.source, type=earlier.type, subject=earlier.subject, data=earlier.data)))
            continue
        if payload is not None:
            out.append((type(payload), new_event(source=payload.SOURCE, type=payload.TYPE, subject=subject, data=payload)))
    return out


def modelled_balances(stream, book: RuleBook) -> dict[tuple[str, str], Decimal]:
    """What the pure model says the stream is worth, each event id taken once."""
    replay, seen = Replay(book), set()
    for _, event in stream:
        if event.id in seen:
            continue
        seen.add(event.id)
        when = event.data.get("submitted_at") or event.data.get("ended_at") or event.data.get("recorded_at")
        replay.apply(event.type, event.data, datetime.fromisoformat(when) if when else event.time)
    return replay.balances()


async def publish_all(service, stream) -> int:
    for model, event in stream:
        await service.producer.send(f"{service.prefix}{model.TOPIC}", event.to_bytes(), key=event.subject.encode())
    await service.producer.flush()
    return len({e.id for _, e in stream})


async def account_balances(service, run: str) -> dict[tuple[str, str], Decimal]:
    rows = await service.sql("SELECT account, unit, balance FROM balances WHERE account LIKE $1 AND balance <> 0", f"%:{run}-%")
    return {(r["account"], r["unit"]): r["balance"] for r in rows}


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate))
@given(steps=st.lists(step, min_size=1, max_size=40))
async def test_balances_equal_the_sum_of_entries_after_a_randomized_stream(rewards, steps):
    run = uid("r")[:9]
    stream = build_stream(steps, run)
    start = await rewards.processed()
    fresh = await publish_all(rewards, stream)
    await rewards.settle(start + fresh)
    check = (await rewards.client.get("/internal/v1/ledger/check", headers=rewards.headers(Role.SERVICE))).json()
    assert check["ok"], check["problems"]
    default = RuleSet.model_validate((await rewards.client.get("/v1/rules/2026.1", headers=rewards.headers(Role.SERVICE))).json()["rules"])
    assert await account_balances(rewards, run) == modelled_balances(stream, RuleBook([default]))
    paid = await rewards.sql("SELECT count(*) AS n FROM ledger_entries WHERE rule_line LIKE 'case.reward%' AND effect_key LIKE $1", f"case:{run}-%")
    assert paid[0]["n"] <= 4


NEW_RULES = {
    "version": "2026.2", "effective_from": "2020-01-01T00:00:00Z", "description": "提高服务时长积分，案件奖励均分",
    "points_per_hour": 15, "tip_points": {"fraud": 30, "drugs": 25, "fugitive": 40, "other": 1},
    "verified_bonus_by_quality": {"1": 5, "2": 25, "3": 60}, "case_reward_split": "equal",
    "training_points": {"county": 12, "town": 6, "village": 2},
}


async def test_a_rescore_preview_matches_a_fresh_replay_and_adoption_posts_it(stack):
    steps = [
        ("tip", 0, ("volunteer", 0), "fraud", True), ("tip", 1, ("volunteer", 1), "drugs", False), ("tip", 2, ("anonymous", 0), "fugitive", False),
        ("review", 0, "verified", 3), ("review", 1, "rejected", 1), ("review", 2, "verified", 2),
        ("outcome", 0, "arrest", ("volunteer", 1), [("anonymous", 0), ("volunteer", 2)]), ("merge", 1, [0]),
        ("outcome", 1, "case_solved", ("volunteer", 3), []), ("hours", 2, Decimal("3.5"), 3, 2, True), ("hours", 0, Decimal("8"), 1, 1, False),
        ("training", 3, "county"), ("again", 3, False), ("again", 0, True),
    ]
    run = uid("p")[:9]
    stream = build_stream(steps, run)
    admin = None
    async with rewards_service(stack, "preview", star_sweep_interval_s="0") as live:
        admin = live.headers(Role.COUNTY_ADMIN, scope_path="/c")
        await live.settle(await publish_all(live, stream))
        draft = await live.client.post("/v1/rules", json=NEW_RULES, headers=admin)
        assert draft.status_code == 201, draft.text
        assert (await live.client.post("/v1/rules", json=NEW_RULES, headers=admin)).status_code == 409
        preview = (await live.client.post("/v1/rules/2026.2/preview", headers=admin)).json()
        assert preview["changed_accounts"] > 0
        previewed = {(r["account"], r["unit"]): Decimal(str(r["preview"])) for r in preview["accounts"] if r["preview"]}
        before = await account_balances(live, run)
        assert before != previewed  # nothing posted by a preview

        async with rewards_service(stack, "fresh", star_sweep_interval_s="0") as fresh:
            assert (await fresh.client.post("/v1/rules", json=NEW_RULES, headers=admin)).status_code == 201
            assert (await fresh.client.post("/v1/rules/2026.2/adopt", json={}, headers=admin)).status_code == 200
            await fresh.settle(await publish_all(fresh, stream))
            assert await account_balances(fresh, run) == previewed

        adopted = await live.client.post("/v1/rules/2026.2/adopt", json={"rescore": True}, headers=admin)
        assert adopted.status_code == 200 and adopted.json()["adjusting_entries"] == preview["changed_accounts"]
        assert await account_balances(live, run) == previewed
        assert (await live.client.get("/internal/v1/ledger/check", headers=live.headers(Role.SERVICE))).json()["ok"]
        again = await live.client.post("/v1/rules/2026.2/adopt", json={"rescore": True}, headers=admin)
        assert again.status_code == 409 and again.json()["detail"]["field"] == "version"
        current = (await live.client.get("/v1/rules/current", headers=admin)).json()
        assert current["version"] == "2026.2"
        bad = await live.client.post("/v1/rules", json={**NEW_RULES, "version": "2026.3", "tip_points": {"fraud": -5}}, headers=admin)
        assert bad.status_code == 422 and "tip_points" in bad.json()["detail"]["field"]
