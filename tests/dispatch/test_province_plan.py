"""The planner at province scale (#22): one exact plan per zone, the supply between zones fixed by the cell plan.

`PROVINCE_PAIRS` is lowered to 0 (and `PART_HEADS_MOST` to 130) here so county-sized problems take the by-parts path, where the dense optimum can
check it: every head the fill bound says is filled (by a repair flow when the zones alone cannot), where zones do
not interact the plan is the exact one, and below the threshold nothing changes.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from dispatch import province_plan, solver
from dispatch.operations import zone_map
from dispatch.solver import AssignmentProblem, Post, Volunteer, fill_bound, solve
from tests.dispatch.test_solver import MONDAY, check_plan, dense_optimum

KM_LAT = 1 / 111.0
SHIFT = dict(shift_start=MONDAY, shift_end=MONDAY + timedelta(hours=8))


def zones(seed: int, layout: list[tuple[float, int, int, int]], *, skill_in: dict[int, str] | None = None) -> AssignmentProblem:
    """Zones at (km north of the origin, posts, heads per post, volunteers); `skill_in` = {zone: skill}: that zone's
    volunteers hold the skill and the other zones' first two posts require it."""
    rng = np.random.default_rng(seed)
    posts, volunteers = [], []
    for z, (north_km, post_count, heads, people) in enumerate(layout):
        for i in range(post_count):
            x, y = rng.normal(0, 1.0, 2)
            needs = frozenset(s for zone, s in (skill_in or {}).items() if zone != z and i < 2)
            posts.append(Post(id=f"z{z}-p{i}", lat=30.2 + (north_km + y) * KM_LAT, lon=120.1 + x * KM_LAT,
                              headcount=heads, priority=int(rng.integers(1, 6)), required_skills=needs, **SHIFT))
        for i in range(people):
            x, y = rng.normal(0, 2.0, 2)
            volunteers.append(Volunteer(id=f"z{z}-v{i}", lat=30.2 + (north_km + y) * KM_LAT, lon=120.1 + x * KM_LAT,
                                        star=int(rng.integers(1, 6)), skills=frozenset([(skill_in or {}).get(z, "")]) - {""}))
    return AssignmentProblem(volunteers, posts)


@pytest.fixture
def by_parts(monkeypatch):
    """Every problem is planned by parts, of at most 130 heads."""
    monkeypatch.setattr(province_plan, "PROVINCE_PAIRS", 0)
    monkeypatch.setattr(province_plan, "PART_HEADS_MOST", 130)


def test_far_apart_zones_are_parts_and_the_plan_is_the_exact_one(by_parts):
    problem = zones(1, [(0.0, 12, 5, 90), (100.0, 10, 6, 80), (200.0, 8, 4, 50)])
    volunteer_parts, post_parts = province_plan.zone_parts(problem)
    assert sorted(sorted({problem.posts[p].id[:2] for p in posts}) for posts in post_parts) == [["z0"], ["z1"], ["z2"]]
    for vols, posts in zip(volunteer_parts, post_parts, strict=True):
        zone = problem.posts[posts[0]].id[:2]
        assert all(problem.volunteers[v].id.startswith(zone) for v in vols)  # each zone keeps its own people
    calls = []

    def recorded_map(function, inputs):
        calls.append(len(inputs := list(inputs)))
        return map(function, inputs)

    plan = province_plan.plan(problem, map_parts=recorded_map)
    assert calls == [3]
    check_plan(problem, plan)
    filled, optimum, _ = dense_optimum(problem)
    assert plan.assigned == filled == problem.slot_count
    assert plan.cost <= optimum * (1 + solver.TRAVEL_TOLERANCE) + 1e-3 * plan.assigned


def test_a_zone_short_of_people_gets_them_from_the_nearer_zone(by_parts):
    # zone 0 asks 120 heads and has 30 volunteers; zone 1 (25 km north) has plenty, zone 2 (70 km south) too
    problem = zones(2, [(0.0, 15, 8, 30), (25.0, 5, 4, 200), (-70.0, 5, 4, 200)])
    volunteer_parts, post_parts = province_plan.zone_parts(problem)
    zone0 = next(k for k, posts in enumerate(post_parts) if problem.posts[posts[0]].id.startswith("z0"))
    members = [problem.volunteers[v].id[:2] for v in volunteer_parts[zone0]]
    assert len(members) >= 120 and members.count("z1") >= 80 and members.count("z2") == 0
    plan = province_plan.plan(problem)
    check_plan(problem, plan)
    filled, optimum, _ = dense_optimum(problem)
    assert plan.assigned == filled == problem.slot_count
    assert plan.cost <= optimum * 1.02


def test_the_plan_fills_every_head_of_the_bound_when_a_zone_lacks_the_qualified(by_parts):
    # only zone 1's people hold first_aid, and zone 0's first two posts need it: the parts alone leave them empty
    problem = zones(3, [(0.0, 10, 8, 80), (40.0, 10, 8, 120)], skill_in={1: "first_aid"})
    volunteer_parts, post_parts = province_plan.zone_parts(problem)
    zone0 = next(k for k, posts in enumerate(post_parts) if problem.posts[posts[0]].id.startswith("z0"))
    assert not any(problem.volunteers[v].skills for v in volunteer_parts[zone0])  # so the repair flow is needed
    plan = province_plan.plan(problem)
    check_plan(problem, plan)
    filled, _, _ = dense_optimum(problem)
    assert plan.assigned == filled == fill_bound(problem).heads == problem.slot_count
    assert plan.unfilled.sum() == 0


def test_below_the_threshold_the_exact_planner_runs_unchanged():
    problem = zones(4, [(0.0, 12, 5, 90), (100.0, 10, 6, 80)])
    plan = province_plan.plan(problem, map_parts=lambda f, parts: pytest.fail("planned by parts below the threshold"))
    exact = solve(problem)
    assert np.array_equal(plan.volunteer_index, exact.volunteer_index)
    assert np.array_equal(plan.post_index, exact.post_index)


def test_worker_processes_give_the_plan_the_parts_give_in_process(by_parts):
    problem = zones(5, [(0.0, 10, 8, 100), (100.0, 10, 8, 100)])
    assert len(province_plan.zone_parts(problem)[1]) == 2
    here = province_plan.plan(problem)
    with zone_map(len(problem.volunteers), len(problem.posts)) as map_parts:
        there = province_plan.plan(problem, map_parts=map_parts)
    assert np.array_equal(here.volunteer_index, there.volunteer_index)
    assert np.array_equal(here.post_index, there.post_index)


def test_a_part_sliced_from_the_compiled_problem_is_the_problem_of_its_volunteers_and_posts():
    problem = zones(6, [(0.0, 10, 5, 60), (30.0, 10, 5, 60)], skill_in={1: "first_aid"})
    rng = np.random.default_rng(6)
    vi, pi = np.sort(rng.choice(120, 70, replace=False)), np.sort(rng.choice(20, 12, replace=False))
    part = province_plan.part_problem(problem, vi, pi)
    compiled = AssignmentProblem([problem.volunteers[v] for v in vi], [problem.posts[p] for p in pi])
    pv, pp = np.repeat(np.arange(70), 12), np.tile(np.arange(12), 70)
    assert compiled.feasible(pv, pp).any() and not compiled.feasible(pv, pp).all()
    assert np.array_equal(part.feasible(pv, pp), compiled.feasible(pv, pp))
    assert np.array_equal(part._check(pv, pp), compiled._check(pv, pp))
    assert np.allclose(part.cost(pv, pp), compiled.cost(pv, pp))
    assert np.array_equal(part.qualification_table()[:, part.p_profile], compiled.qualification_table()[:, compiled.p_profile])
    assert fill_bound(part).heads == fill_bound(compiled).heads
