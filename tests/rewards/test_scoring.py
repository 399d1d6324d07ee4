"""Unit tests of the pure scoring rules (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from rewards.scoring import BadFact, Replay, RuleBook, RuleSet, assess_star, score_case_outcome, score_service_hours, score_tip_submitted

V1 = RuleSet(version="v1", effective_from=datetime(2000, 1, 1, tzinfo=UTC))
V2 = RuleSet(version="v2", effective_from=datetime(2026, 6, 1, tzinfo=UTC), points_per_hour=20)
VOL = {"kind": "volunteer", "volunteer_id": "v-1"}


def test_service_hours_points_are_weighted_by_difficulty_risk_and_role():
    lines = score_service_hours(V1, {"volunteer_id": "v-1", "hours": 4, "difficulty": 2, "risk": 3, "role": "organiser"})
    assert [(line.unit, line.amount) for line in lines] == [("hours", Decimal("4.00")), ("points", Decimal("93.60"))]
    assert "难度2级" in lines[1].reason and "组织者" in lines[1].reason


def test_negative_hours_and_unknown_grades_are_refused():
    with pytest.raises(BadFact, match="negative amount"):
        score_service_hours(V1, {"volunteer_id": "v", "hours": -1})
    with pytest.raises(BadFact, match="difficulty"):
        score_service_hours(V1, {"volunteer_id": "v", "hours": 1, "difficulty": 9})


def test_rule_book_picks_the_version_in_force_or_the_one_named():
    book = RuleBook([V1, V2])
    assert book.pick(datetime(2026, 5, 31, tzinfo=UTC)).version == "v1"
    assert book.pick(datetime(2026, 6, 2, tzinfo=UTC)).version == "v2"
    assert book.pick(datetime(2026, 6, 2, tzinfo=UTC), "v1").version == "v1"
    with pytest.raises(BadFact, match="unknown rule version 'v9'"):
        book.pick(datetime(2026, 6, 2, tzinfo=UTC), "v9")
    with pytest.raises(BadFact, match="no rule version in force"):
        RuleBook([V2]).pick(datetime(2020, 1, 1, tzinfo=UTC))


def test_case_reward_goes_to_the_first_valid_reporter_or_is_split():
    outcome = {"outcome": "arrest", "category": "fugitive", "first_reporter": {"kind": "volunteer"},
               "reporters": [{"kind": "anonymous", "claim_ref": "c-1"}, VOL]}
    [line] = score_case_outcome(V1, outcome)
    assert line.account == "claim:c-1" and line.amount == Decimal("500.00")
    split = score_case_outcome(V1.model_copy(update={"case_reward_split": "equal", "case_reward_points": {"fugitive": 100}}), outcome)
    assert [line.amount for line in split] == [Decimal("50.00"), Decimal("50.00")]
    assert score_case_outcome(V1, {**outcome, "outcome": "investigating"}) == []


def test_star_is_the_highest_whose_every_threshold_is_met_with_reasons():
    assessed = assess_star(V1, hours=70, points=500, reliability=0.8, training_compliant=False)
    assert assessed.star == 2
    assert any("培训未达标" in r for r in assessed.reasons)
    assert assess_star(V1, hours=400, points=3000, reliability=1.0, training_compliant=True).star == 5


def test_rule_sets_refuse_negative_amounts_and_incomplete_stars():
    with pytest.raises(ValidationError):
        RuleSet(version="bad", effective_from=datetime(2026, 1, 1, tzinfo=UTC), tip_points={"fraud": -1})
    with pytest.raises(ValidationError):
        RuleSet(version="bad", effective_from=datetime(2026, 1, 1, tzinfo=UTC), stars=[])


def test_replay_pays_one_reward_per_merged_case_group():
    replay = Replay(RuleBook([V1]))
    when = datetime(2026, 3, 1, tzinfo=UTC)
    tip = {"tip_id": "t1", "category": "drugs", "reporter": VOL, "has_attachment": False}
    replay.apply("shouwang.intel.tip_submitted.v1", tip, when)
    replay.apply("shouwang.intel.tip_submitted.v1", tip, when)
    outcome = {"case_id": "A", "outcome": "arrest", "category": "drugs", "first_reporter": VOL, "reporters": []}
    replay.apply("shouwang.intel.case_outcome_recorded.v1", outcome, when)
    replay.apply("shouwang.intel.cases_merged.v1", {"case_id": "B", "merged_case_ids": ["A"]}, when)
    replay.apply("shouwang.intel.case_outcome_recorded.v1", {**outcome, "case_id": "B"}, when)
    assert replay.balances() == {("volunteer:v-1", "points"): Decimal("500.00"), ("pending:volunteer:v-1", "points"): Decimal("20.00")}
    assert score_tip_submitted(V1, {**tip, "reporter": {"kind": "anonymous"}}) == []


def test_leaderboard_period_outside_the_calendar_is_a_clear_422():
    from shouwang_shared.errors import Unprocessable

    from rewards.standings import period_bounds

    assert period_bounds("2026-11")[0].month == 11
    for bad in ("0000", "0000-01", "9999-12", "2026-13"):
        with pytest.raises(Unprocessable) as refused:
            period_bounds(bad)
        assert refused.value.field == "period"


def test_replay_holds_tip_points_pending_until_review_and_caps_them_per_reporter_and_day():
    replay = Replay(RuleBook([V1]))
    evening = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # 23:30 in the county; 16:30 UTC is already the next day there
    for i in range(7):
        replay.apply("shouwang.intel.tip_submitted.v1", {"tip_id": f"t{i}", "category": "fraud", "reporter": VOL}, evening)
    replay.apply("shouwang.intel.tip_submitted.v1", {"tip_id": "t9", "category": "fraud", "reporter": VOL},
                 datetime(2026, 3, 1, 16, 30, tzinfo=UTC))
    assert replay.balances() == {("pending:volunteer:v-1", "points"): Decimal("60.00")}  # 5 capped tips + 1 the next day, 10 each
    review = {"tip_id": "t0", "category": "fraud", "reporter": VOL, "quality": 1, "case_id": "K"}
    replay.apply("shouwang.intel.tip_reviewed.v1", {**review, "verdict": "verified"}, evening)
    replay.apply("shouwang.intel.tip_reviewed.v1", {**review, "verdict": "rejected"}, evening)  # settled: moves nothing back
    replay.apply("shouwang.intel.tip_reviewed.v1", {**review, "tip_id": "t1", "verdict": "verified"}, evening)  # same case: no 2nd bonus
    replay.apply("shouwang.intel.tip_reviewed.v1", {**review, "tip_id": "t6", "case_id": None, "verdict": "verified"}, evening)  # beyond the cap: bonus only
    assert replay.balances() == {("pending:volunteer:v-1", "points"): Decimal("40.00"), ("volunteer:v-1", "points"): Decimal("40.00")}
