"""The brief's training rule in dispatch (pure): behind on training keeps ordinary duties; past the notice, no specialised ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from dispatch.choices import choose_backfill, nearest_available
from dispatch.planning_inputs import volunteer_from_state
from dispatch.solver import AssignmentProblem, Post, solve

START = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)


def state(**fields) -> dict:
    """A stored volunteer state as the read model holds it."""
    values = dict(
        volunteer_id="v", status="active", training_compliant=True, specialised_eligible=True, lat=30.2, lon=120.1, star=3,
        core=False, recruitment_mode="long_term", skills=["first_aid"], teams=["mediation"], certificates=[], availability=[],
    )
    values.update(fields)
    return values


def posts() -> list[Post]:
    at = dict(lat=30.2, lon=120.1, shift_start=START, shift_end=START + timedelta(hours=4), headcount=1)
    return [
        Post(id="ordinary", **at),
        Post(id="team", required_teams=frozenset({"mediation"}), **at),
        Post(id="skill", required_skills=frozenset({"first_aid"}), **at),
    ]


def takes(volunteer_state: dict) -> set[str]:
    """The posts a volunteer in this state may take."""
    problem = AssignmentProblem([volunteer_from_state(volunteer_state)], posts())
    ok = problem.feasible(np.zeros(3, np.int64), np.arange(3))
    return {p.id for p, allowed in zip(problem.posts, ok.tolist(), strict=True) if allowed}


def test_a_compliant_volunteer_may_take_every_post_they_qualify_for():
    assert takes(state()) == {"ordinary", "team", "skill"}


def test_behind_on_training_within_the_notice_keeps_every_duty():
    assert takes(state(training_compliant=False, specialised_eligible=True)) == {"ordinary", "team", "skill"}


def test_behind_past_the_notice_keeps_ordinary_duties_but_loses_posts_needing_a_team_or_a_skill():
    flagged = state(training_compliant=False, specialised_eligible=False)
    assert volunteer_from_state(flagged).active is True
    assert takes(flagged) == {"ordinary"}


def test_suspended_or_retired_volunteers_take_nothing():
    assert takes(state(status="suspended")) == set()
    assert takes(state(status="retired")) == set()


def test_the_planner_and_both_backfill_modes_follow_the_rule():
    barred = volunteer_from_state(state(volunteer_id="barred", training_compliant=False, specialised_eligible=False))
    problem = AssignmentProblem([barred], posts())
    plan = solve(problem)
    assert [problem.posts[p].id for p in plan.post_index] == ["ordinary"]
    assert plan.unfilled.tolist() == [0, 1, 1]
    for p in (1, 2):  # the team post and the skill post
        assert nearest_available(problem, p, count=1).tolist() == []
        assert choose_backfill(problem, p, expected_short=1.0).tolist() == []
    assert nearest_available(problem, 0, count=1).tolist() == [0]
    assert choose_backfill(problem, 0, expected_short=1.0).tolist() == [0]
