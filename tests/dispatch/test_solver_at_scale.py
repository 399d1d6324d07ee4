"""The planner's at-scale pricing (#22), forced on county-sized problems where the dense optimum can check it.

Above `EXACT_PRICING_PAIRS` the planner prices per volunteer and price class, with potentials rooted at the flow's
source, instead of listing every pair within reach. Lowering the threshold to 0 runs that path here: the plan must
still fill exactly the optimum's heads, travel within 1 % of it, and the travel gap it claims to have proven must
hold against the true optimum.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shouwang_dev.county_shapes import SHAPES, generate_county
from shouwang_dev.county_shapes import dense_optimum as flow_optimum
from shouwang_dev.synthetic import generate_summit, summit_problem

from dispatch import solver
from tests.dispatch.test_solver import check_plan, dense_optimum, small_county


@pytest.fixture
def at_scale(monkeypatch):
    """Every problem takes the at-scale pricing path."""
    monkeypatch.setattr(solver, "EXACT_PRICING_PAIRS", 0)


def assert_gap_proven(plan, optimum_cost: float) -> None:
    """The Lagrangian bound behind `travel_gap` must not exceed the true optimum (metre rounding aside)."""
    assert plan.cost * (1 - plan.travel_gap) <= optimum_cost + 1e-3 * plan.assigned + 1e-6


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_large_county_shapes_priced_per_volunteer_fill_the_optimum_and_prove_their_gap(at_scale, name):
    problem = generate_county(SHAPES[name], seed=7)
    plan = solver.solve(problem)
    optimum = flow_optimum(problem)
    check_plan(problem, plan)
    assert plan.assigned == optimum.heads == plan.bound_heads
    assert plan.cost <= optimum.cost * 1.01
    assert plan.travel_gap <= solver.TRAVEL_TOLERANCE
    assert_gap_proven(plan, optimum.cost)


def test_summit_priced_per_volunteer_is_within_the_tolerance_of_the_dense_optimum(at_scale):
    problem = summit_problem(generate_summit(volunteers=1_000, posts=110, zones=6, headcount=820, seed=2, radius_km=12))
    plan = solver.solve(problem)
    filled, dense_cost, _ = dense_optimum(problem)
    assert plan.assigned == filled == 820
    assert plan.travel_gap <= solver.TRAVEL_TOLERANCE
    assert_gap_proven(plan, dense_cost)




@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(small_county, st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 12]))
def test_small_counties_priced_per_volunteer_match_the_dense_optimum(at_scale, shape, seed, k):
    problem = generate_county(shape, seed)
    plan = solver.solve(problem, k=k)
    check_plan(problem, plan)
    filled, dense_cost, _ = dense_optimum(problem)
    assert plan.assigned == filled == plan.bound_heads
    assert plan.cost <= dense_cost * 1.01 + 1e-3 * plan.assigned
    if plan.assigned:
        assert_gap_proven(plan, dense_cost)
