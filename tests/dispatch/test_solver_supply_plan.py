"""The cell-level supply plan (#22): where a zone asks more heads than it has volunteers, the planner's first graph
must already hold arcs from the nearest volunteers of the other zones, spread over enough posts to take them."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from dispatch import solver
from dispatch.solver import EARTH_RADIUS_KM, AssignmentProblem, Post, Volunteer, _unit_vectors, solve
from dispatch.supply_plan import cross_cell_pairs
from tests.dispatch.test_solver import MONDAY, check_plan, dense_optimum

KM_LAT = 1 / 111.0


def imbalanced_zones(seed: int) -> AssignmentProblem:
    """Zone A (the origin) asks 160 heads and has 40 volunteers; zone B, 30 km north, asks 20 and has 300."""
    rng = np.random.default_rng(seed)
    shift = dict(shift_start=MONDAY, shift_end=MONDAY + timedelta(hours=8))
    posts, volunteers = [], []
    for zone, north_km, post_count, heads, people in (("A", 0.0, 20, 8, 40), ("B", 30.0, 5, 4, 300)):
        for i in range(post_count):
            x, y = rng.normal(0, 1.0, 2)
            posts.append(Post(id=f"{zone}-p{i}", lat=30.2 + (north_km + y) * KM_LAT, lon=120.1 + x * KM_LAT, headcount=heads,
                              priority=int(rng.integers(1, 6)), **shift))
        for i in range(people):
            x, y = rng.normal(0, 3.0, 2)
            volunteers.append(Volunteer(id=f"{zone}-v{i}", lat=30.2 + (north_km + y) * KM_LAT, lon=120.1 + x * KM_LAT,
                                        star=int(rng.integers(1, 6))))
    return AssignmentProblem(volunteers, posts)


def test_cell_plan_sends_the_deficit_from_the_other_zone_nearest_first_over_posts_that_hold_it():
    problem = imbalanced_zones(seed=1)
    v_points = EARTH_RADIUS_KM * _unit_vectors(problem.v_lat, problem.v_lon)
    p_points = EARTH_RADIUS_KM * _unit_vectors(problem.p_lat, problem.p_lon)
    vi, pi = cross_cell_pairs(v_points, p_points, problem.p_headcount)
    from_b_to_a = (vi >= 40) & (pi < 20)
    senders = np.unique(vi[from_b_to_a])
    assert len(senders) >= 120  # 120 heads must cross; each crossing volunteer needs an arc over
    reached = np.unique(pi[from_b_to_a])
    assert problem.p_headcount[reached].sum() >= 120  # not all onto the one post nearest zone B
    lat_b = problem.v_lat[40:]
    assert np.median(problem.v_lat[senders]) < np.median(lat_b)  # B's southern half, nearest A, is sent


def test_first_graph_alone_is_near_the_optimum_where_cross_zone_supply_matters(monkeypatch):
    problem = imbalanced_zones(seed=2)
    filled, optimum, _ = dense_optimum(problem)
    first = solve(problem, price_rounds=0)  # one flow on the first graph, no pricing
    check_plan(problem, first)
    assert first.assigned == filled == 180
    assert first.cost <= optimum * 1.02, f"first graph travels {first.cost:.1f} km vs optimum {optimum:.1f}"
    monkeypatch.setattr(solver, "_supply_plan_pairs", lambda problem: (np.empty(0, np.int64), np.empty(0, np.int64)))
    blind = solve(problem, price_rounds=0)
    assert blind.cost > first.cost  # what the distance-blind witness alone gives (why the plan is needed)


def test_priced_plan_on_imbalanced_zones_matches_the_dense_optimum():
    for seed in (3, 4):
        problem = imbalanced_zones(seed)
        plan = solve(problem)
        check_plan(problem, plan)
        filled, optimum, _ = dense_optimum(problem)
        assert plan.assigned == filled
        assert plan.cost <= optimum * (1 + solver.TRAVEL_TOLERANCE) + 1e-3 * plan.assigned
        assert plan.cost * (1 - plan.travel_gap) <= optimum + 1e-3 * plan.assigned
