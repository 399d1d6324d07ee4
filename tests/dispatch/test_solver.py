"""The planner on its own: hard constraints hold, nobody is double-booked, and the sparse answer is near the dense optimum."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from shouwang_dev.county_shapes import SHAPES, CountyShape, generate_county
from shouwang_dev.county_shapes import dense_optimum as flow_optimum
from shouwang_dev.synthetic import generate_summit, summit_problem

from dispatch.choices import shortfall_reasons
from dispatch.solver import (
    LOCAL_TZ,
    AssignmentProblem,
    Post,
    Volunteer,
    fill_bound,
    haversine_km,
    solve,
    unfilled_penalty,
)

MONDAY = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # 08:00 Beijing time, a Monday
SKILLS = ("first_aid", "english")
TEAMS = ("traffic_civility", "mediation")


def may_take(v: Volunteer, p: Post) -> bool:
    """The hard constraints written out plainly (an independent check of the vectorised one)."""
    if not v.active or v.lat is None or v.star < p.min_star or (p.core_only and not v.core):
        return False
    if not p.required_skills <= v.skills:
        return False
    if p.required_teams and not p.required_teams & v.teams:
        return False
    if (p.required_teams or p.required_skills) and not v.specialised_eligible:  # specialised duty
        return False
    end_day = p.shift_end.astimezone(LOCAL_TZ).date()
    held = {code: exp for code, exp in v.certificates}
    for code in p.required_certificates:
        if code not in held or (held[code] is not None and held[code] < end_day):
            return False
    if v.availability:
        start, end = p.shift_start.astimezone(LOCAL_TZ), p.shift_end.astimezone(LOCAL_TZ)
        if start.date() != end.date() and not (end.hour == 0 and end.minute == 0 and end - start <= timedelta(days=1)):
            return False
        s_min, e_min = start.hour * 60 + start.minute, (end.hour * 60 + end.minute) or 1440
        if not any(w == start.weekday() and a <= s_min and e_min <= b for w, a, b in v.availability):
            return False
    if p.max_distance_km is not None and haversine_km(v.lat, v.lon, p.lat, p.lon) > p.max_distance_km:
        return False
    return not any(bs < p.shift_end and p.shift_start < be for bs, be in v.busy)


def dense_optimum(problem: AssignmentProblem) -> tuple[int, float, float]:
    """(heads filled, pair cost, penalty) of the exact optimum over every feasible pair (the oracle)."""
    nv = len(problem.volunteers)
    slot_post = np.repeat(np.arange(len(problem.posts)), problem.p_headcount)
    slots = len(slot_post)
    vi = np.tile(np.arange(nv), slots)
    pi = np.repeat(slot_post, nv)
    ok = problem.feasible(vi, pi).reshape(slots, nv)
    pair = np.where(ok, problem.cost(vi, pi).reshape(slots, nv), np.inf)
    dummy = np.full((slots, slots), np.inf)
    penalties = np.array([unfilled_penalty(int(problem.p_priority[p])) for p in slot_post])
    np.fill_diagonal(dummy, penalties)
    rows, cols = linear_sum_assignment(np.hstack([pair, dummy]))
    real = cols < nv
    return int(real.sum()), float(pair[rows[real], cols[real]].sum()), float(penalties[rows[~real]].sum())


def check_plan(problem: AssignmentProblem, plan) -> None:
    vols, posts = problem.volunteers, problem.posts
    assert len(set(plan.volunteer_index.tolist())) == plan.assigned, "a volunteer was booked twice"
    per_post = np.bincount(plan.post_index, minlength=len(posts))
    assert (per_post <= problem.p_headcount).all(), "a post got more heads than it asked for"
    assert (per_post + plan.unfilled == problem.p_headcount).all()
    for v, p in zip(plan.volunteer_index, plan.post_index, strict=True):
        assert may_take(vols[v], posts[p]), f"{vols[v]} may not take {posts[p]}"


volunteer_strategy = st.builds(
    lambda i, lat, lon, star, core, active, spec, skills, teams, cert, avail, busy: Volunteer(
        id=f"v{i}", lat=30.2 + lat, lon=120.1 + lon, star=star, core=core, active=active, specialised_eligible=spec,
        skills=frozenset(skills), teams=frozenset(teams),
        certificates=(("first_aid", date(2026, 12, 6) if cert == 1 else None),) if cert else (),
        availability=((0, 7 * 60, 20 * 60),) if avail == 1 else ((1, 0, 1440),) if avail == 2 else (),
        busy=((MONDAY + timedelta(hours=2), MONDAY + timedelta(hours=4)),) if busy else (),
    ),
    st.integers(0, 10**6), st.floats(-0.2, 0.2), st.floats(-0.2, 0.2), st.integers(1, 5), st.booleans(),
    st.booleans(), st.booleans(), st.sets(st.sampled_from(SKILLS)), st.sets(st.sampled_from(TEAMS)),
    st.integers(0, 2), st.integers(0, 2), st.booleans(),
)

post_strategy = st.builds(
    lambda i, lat, lon, start_h, hours, head, skills, teams, cert, star, core, prio, reach: Post(
        id=f"p{i}", lat=30.2 + lat, lon=120.1 + lon, shift_start=MONDAY + timedelta(hours=start_h),
        shift_end=MONDAY + timedelta(hours=start_h + hours), headcount=head, required_skills=frozenset(skills),
        required_teams=frozenset(teams), required_certificates=frozenset({"first_aid"}) if cert else frozenset(),
        min_star=star, core_only=core, priority=prio, max_distance_km=reach,
    ),
    st.integers(0, 10**6), st.floats(-0.2, 0.2), st.floats(-0.2, 0.2), st.integers(-2, 14), st.integers(1, 10),
    st.integers(1, 4), st.sets(st.sampled_from(SKILLS), max_size=1), st.sets(st.sampled_from(TEAMS), max_size=1),
    st.booleans(), st.integers(1, 3), st.booleans(), st.integers(1, 5), st.one_of(st.none(), st.floats(2, 30)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(volunteer_strategy, min_size=0, max_size=40), st.lists(post_strategy, min_size=1, max_size=8))
def test_hard_constraints_never_broken_and_nobody_double_booked(volunteers, posts):
    problem = AssignmentProblem(volunteers, posts)
    plan = solve(problem, k=2)
    check_plan(problem, plan)
    filled, _, penalty = dense_optimum(problem)
    assert plan.assigned == filled, "the sparse graph filled fewer heads than possible"
    assert sum(unfilled_penalty(int(problem.p_priority[p])) * n for p, n in enumerate(plan.unfilled)) == pytest.approx(penalty)


def test_expired_certificate_overlapping_shift_and_unavailability_exclude():
    post = Post(id="p", lat=30.2, lon=120.1, shift_start=MONDAY, shift_end=MONDAY + timedelta(hours=8), headcount=3,
                required_certificates=frozenset({"first_aid"}))
    expired = Volunteer(id="expired", lat=30.2, lon=120.1, certificates=(("first_aid", date(2026, 12, 1)),))
    busy = Volunteer(id="busy", lat=30.2, lon=120.1, certificates=(("first_aid", None),),
                     busy=((MONDAY + timedelta(hours=7), MONDAY + timedelta(hours=9)),))
    away = Volunteer(id="away", lat=30.2, lon=120.1, certificates=(("first_aid", None),), availability=((2, 0, 1440),))
    fine = Volunteer(id="fine", lat=30.3, lon=120.2, certificates=(("first_aid", date(2027, 1, 1)),), availability=((0, 480, 960),))
    problem = AssignmentProblem([expired, busy, away, fine], [post])
    plan = solve(problem)
    assert [problem.volunteers[v].id for v in plan.volunteer_index] == ["fine"]
    assert plan.unfilled.tolist() == [2]


def test_team_post_needs_specialised_eligibility_and_priority_wins_a_scarce_volunteer():
    at = dict(lat=30.2, lon=120.1, shift_start=MONDAY, shift_end=MONDAY + timedelta(hours=4), headcount=1)
    team_post = Post(id="team", required_teams=frozenset({"mediation"}), priority=1, **at)
    low = Post(id="low", priority=5, **{**at, "lat": 30.2001})
    untrained = Volunteer(id="untrained", lat=30.2, lon=120.1, teams=frozenset({"mediation"}), specialised_eligible=False)
    trained = Volunteer(id="trained", lat=30.25, lon=120.15, teams=frozenset({"mediation"}))
    problem = AssignmentProblem([untrained, trained], [team_post, low])
    plan = solve(problem)
    got = {problem.posts[p].id: problem.volunteers[v].id for v, p in zip(plan.volunteer_index, plan.post_index, strict=True)}
    assert got == {"team": "trained", "low": "untrained"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sparse_solver_within_one_percent_of_dense_optimum_on_1000_volunteers(seed):
    summit = generate_summit(volunteers=1_000, posts=110, zones=6, headcount=820, seed=seed, radius_km=12)
    problem = summit_problem(summit)
    plan = solve(problem)
    check_plan(problem, plan)
    filled, dense_cost, _ = dense_optimum(problem)
    assert plan.assigned == filled == 820
    gap = (plan.cost - dense_cost) / dense_cost
    assert gap <= 0.01, f"gap {gap:.4%}"


def test_headcount_above_the_eligible_pool_leaves_a_shortfall_not_an_error():
    post = Post(id="p", lat=30.2, lon=120.1, shift_start=MONDAY, shift_end=MONDAY + timedelta(hours=4), headcount=50)
    vols = [Volunteer(id=f"v{i}", lat=30.2 + i / 1000, lon=120.1) for i in range(7)]
    plan = solve(AssignmentProblem(vols, [post]))
    assert plan.assigned == 7 and plan.unfilled.tolist() == [43]


share = st.floats(0.0, 1.0)
small_county = st.builds(
    CountyShape,
    volunteers=st.integers(1, 45), posts=st.integers(1, 9), heads=st.integers(1, 45), zones=st.integers(1, 4),
    towns=st.integers(1, 3), radius_km=st.floats(2.0, 30.0), clustered=share, remote_zones=share,
    skill_held=share, skill_needed=share, team_held=share, team_needed=share, certificate_held=share,
    certificate_needed=share, star_needed=share, core_needed=share, windows=st.integers(1, 3),
    limited_availability=share, busy=share, reach_limited=share, reach_km=st.floats(0.5, 25.0), inactive=st.floats(0.0, 0.3),
)


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_county, st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 12]))
def test_plan_fills_as_many_heads_as_the_dense_optimum_and_travels_within_one_percent(shape, seed, k):
    problem = generate_county(shape, seed)
    plan = solve(problem, k=k)
    check_plan(problem, plan)
    filled, dense_cost, penalty = dense_optimum(problem)
    assert plan.assigned == filled == plan.bound_heads, "the plan filled a different number of heads than the optimum"
    assert sum(unfilled_penalty(int(problem.p_priority[p])) * n for p, n in enumerate(plan.unfilled)) == pytest.approx(penalty)
    assert plan.cost <= dense_cost * 1.01 + 1e-3 * plan.assigned, f"travel {plan.cost:.3f} vs optimum {dense_cost:.3f}"


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_large_county_shapes_fill_exactly_the_flow_optimum_within_one_percent(name):
    problem = generate_county(SHAPES[name], seed=7)
    plan = solve(problem)
    optimum = flow_optimum(problem)
    assert plan.assigned == optimum.heads == fill_bound(problem).heads
    assert plan.cost <= optimum.cost * 1.01


def test_remote_posts_far_from_clustered_volunteers_are_filled_through_long_reassignment_chains():
    """The issue's county: 85 % of volunteers in 4 towns, a quarter of the zones at the edge, first aid scarce."""
    problem = generate_county(SHAPES["clustered"], seed=1)
    plan = solve(problem)
    optimum = flow_optimum(problem)
    assert plan.assigned == optimum.heads
    assert plan.travel_gap <= 0.0075


def test_dense_oracles_agree_flow_optimum_equals_the_slot_expanded_assignment():
    problem = generate_county(CountyShape(volunteers=60, posts=8, heads=50, clustered=0.8, remote_zones=0.5, windows=2,
                                          busy=0.3, reach_limited=0.5, reach_km=12.0), seed=3)
    filled, cost, _ = dense_optimum(problem)
    optimum = flow_optimum(problem)
    assert optimum.heads == filled
    assert optimum.cost == pytest.approx(cost, rel=1e-4)


def test_shortfall_says_why_each_post_stays_short():
    at = dict(lat=30.2, lon=120.1, shift_start=MONDAY, shift_end=MONDAY + timedelta(hours=4), headcount=2)
    medic = Post(id="medic", required_skills=frozenset({"first_aid"}), priority=1, **at)
    medic_low = Post(id="medic_low", required_skills=frozenset({"first_aid"}), priority=5, **{**at, "lat": 30.21})
    remote = Post(id="remote", max_distance_km=5.0, **{**at, "lat": 31.0})
    night = Post(id="night", **{**at, "shift_start": MONDAY + timedelta(hours=10), "shift_end": MONDAY + timedelta(hours=14)})
    busy_at_night = ((MONDAY + timedelta(hours=9), MONDAY + timedelta(hours=15)),)
    volunteers = [
        Volunteer(id="医1", lat=30.2, lon=120.1, skills=frozenset({"first_aid"}), busy=busy_at_night),
        Volunteer(id="医2", lat=30.2, lon=120.1, skills=frozenset({"first_aid"}), busy=busy_at_night),
        Volunteer(id="志愿者", lat=30.2, lon=120.1, busy=busy_at_night),
    ]
    problem = AssignmentProblem(volunteers, [medic, medic_low, remote, night])
    plan = solve(problem)
    short = np.flatnonzero(plan.unfilled)
    why = shortfall_reasons(problem, plan, short)
    by_post = {problem.posts[p].id: why[int(p)] for p in short}
    assert by_post["medic_low"]["reason"] == "qualified_all_taken" and by_post["medic_low"]["taken_by_other_posts"] == 2
    assert by_post["remote"]["reason"] == "no_one_qualified_within_reach" and by_post["remote"]["qualified_within_reach"] == 0
    assert by_post["night"]["reason"] == "shift_overlap" and by_post["night"]["holding_overlapping_shifts"] == 3
    assert "medic" not in by_post
