"""The planner on its own: hard constraints hold, nobody is double-booked, and the sparse answer is near the dense optimum."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from dispatch.solver import LOCAL_TZ, AssignmentProblem, Post, Volunteer, haversine_km, solve, unfilled_penalty
from dispatch.synthetic import generate_summit, summit_problem

MONDAY = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # 08:00 Beijing time, a Monday
SKILLS = ("first_aid", "english")
TEAMS = ("traffic_civility", "mediation")


def may_take(v: Volunteer, p: Post) -> bool:
    """The hard constraints written out plainly (an independent check of the vectorised one)."""
    if not v.active or v.lat is None or v.star < p.min_star or (p.core_only and not v.core):
        return False
    if not p.required_skills <= v.skills:
        return False
    if p.required_teams and not (v.specialised_eligible and p.required_teams & v.teams):
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
