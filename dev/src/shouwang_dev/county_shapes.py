"""Seeded county shapes for the planner's tests and bench (pure): where volunteers live, where posts stand, how scarce
each qualification is, when people are free or already busy, how far posts reach; and the dense optimum to judge by.

Real counties are not the uniform summit: most volunteers live in a few towns, some posts stand far from any of
them, a skill or a team may be held by few and needed by many. `CountyShape` holds those knobs; `generate_county`
turns one shape and a seed into an `AssignmentProblem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from dispatch.solver import AssignmentProblem, Post, Volunteer, min_cost_fill

CENTER = (29.87, 119.73)  # a county seat in Zhejiang
MONDAY = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # 08:00 Beijing time, a Monday
SHIFT_END_DAY = date(2026, 12, 7)


@dataclass(frozen=True)
class CountyShape:
    """How a county is laid out: counts, clustering, scarcity (held / needed shares), time and reach."""

    volunteers: int = 3_000
    posts: int = 448
    heads: int = 2_857
    zones: int = 12
    towns: int = 4
    radius_km: float = 25.0
    clustered: float = 0.0  # share of volunteers living in the towns (the rest anywhere in the county)
    remote_zones: float = 0.0  # share of zones placed at the county's edge, away from the towns
    skill_held: float = 0.3  # first aid
    skill_needed: float = 0.1
    team_held: float = 0.2  # traffic civility
    team_needed: float = 0.05
    certificate_held: float = 0.3  # of the skilled: a first-aid certificate (some expire before the shift)
    certificate_needed: float = 0.0
    star_needed: float = 0.05  # posts asking for 3 stars or more
    core_needed: float = 0.0
    windows: int = 1  # distinct shift windows; more than one overlap each other
    limited_availability: float = 0.1  # volunteers with declared weekly windows
    busy: float = 0.0  # volunteers already holding a shift elsewhere
    reach_limited: float = 0.0  # posts with a max_distance_km
    reach_km: float = 15.0
    inactive: float = 0.02


SHAPES: dict[str, CountyShape] = {
    "uniform": CountyShape(volunteers=3_000, posts=448, heads=2_857),
    "clustered": CountyShape(volunteers=3_000, posts=448, heads=2_857, clustered=0.85, remote_zones=0.25,
                             skill_held=0.15, skill_needed=0.2),
    "scarce_skill": CountyShape(volunteers=3_200, posts=460, heads=2_900, clustered=0.6, remote_zones=0.2, skill_held=0.08,
                                skill_needed=0.25, team_held=0.06, team_needed=0.15, certificate_needed=0.08,
                                star_needed=0.15, core_needed=0.03, windows=3, busy=0.1, reach_limited=0.2,
                                limited_availability=0.25),
}


def _place(rng: np.random.Generator, centres: np.ndarray, spread_km: float, count: int) -> np.ndarray:
    return centres[rng.integers(0, len(centres), size=count)] + rng.normal(0, spread_km, size=(count, 2))


def _heads(rng: np.random.Generator, total: int, posts: int) -> np.ndarray:
    sizes = np.ones(posts, dtype=np.int64)
    if total > posts:
        sizes += rng.multinomial(total - posts, rng.dirichlet(np.full(posts, 2.0)))
    return sizes


def generate_county(shape: CountyShape, seed: int) -> AssignmentProblem:
    """A county of `shape`, seeded: volunteers and posts as the planner sees them."""
    rng = np.random.default_rng(seed)
    km_lat, km_lon = 1 / 111.0, 1 / (111.0 * np.cos(np.radians(CENTER[0])))
    r = shape.radius_km
    towns = rng.normal(0, r / 4, size=(max(1, shape.towns), 2))
    angle = rng.uniform(0, 2 * np.pi, size=shape.zones)
    edge = np.column_stack([np.cos(angle), np.sin(angle)]) * r * rng.uniform(0.8, 1.0, size=(shape.zones, 1))
    zones = np.where((rng.random(shape.zones) < shape.remote_zones)[:, None], edge, rng.normal(0, r / 3, size=(shape.zones, 2)))
    in_town = rng.random(shape.volunteers) < shape.clustered
    homes = np.where(in_town[:, None], _place(rng, towns, 2.0, shape.volunteers), rng.uniform(-r, r, size=(shape.volunteers, 2)))
    spots = _place(rng, zones, 2.0, shape.posts)
    starts = [MONDAY + timedelta(hours=3 * w) for w in range(max(1, shape.windows))]
    windows = [(s, s + timedelta(hours=6 if shape.windows > 1 else 10)) for s in starts]

    volunteers = []
    for i in range(shape.volunteers):
        u = rng.random(10)
        skilled = u[0] < shape.skill_held
        certificate = ()
        if skilled and u[1] < shape.certificate_held:
            certificate = (("first_aid", None if u[2] < 0.7 else SHIFT_END_DAY - timedelta(days=int(u[3] * 4) - 1)),)
        busy = ()
        if u[4] < shape.busy:
            held = windows[int(u[5] * len(windows))]
            busy = ((held[0] + timedelta(hours=1), held[1] + timedelta(hours=1)),)
        availability = ()
        if u[6] < shape.limited_availability:
            availability = ((0, 7 * 60, 20 * 60),) if u[7] < 0.6 else ((5, 0, 1440), (6, 0, 1440))
        volunteers.append(Volunteer(
            id=f"v{i}", lat=float(CENTER[0] + homes[i, 1] * km_lat), lon=float(CENTER[1] + homes[i, 0] * km_lon),
            star=int(1 + min(4, rng.poisson(1.2))), core=bool(u[8] < 0.12), active=bool(u[9] >= shape.inactive),
            skills=frozenset({"first_aid"}) if skilled else frozenset(),
            teams=frozenset({"traffic_civility"}) if rng.random() < shape.team_held else frozenset(),
            certificates=certificate, availability=availability, busy=busy, load=float(rng.poisson(0.5)),
        ))

    heads = _heads(rng, shape.heads, shape.posts)
    posts = []
    for j in range(shape.posts):
        u = rng.random(7)
        start, end = windows[int(u[0] * len(windows))]
        core = bool(u[5] < shape.core_needed)
        posts.append(Post(
            id=f"p{j}", lat=float(CENTER[0] + spots[j, 1] * km_lat), lon=float(CENTER[1] + spots[j, 0] * km_lon),
            shift_start=start, shift_end=end, headcount=int(min(heads[j], 4) if core else heads[j]),
            required_skills=frozenset({"first_aid"}) if u[1] < shape.skill_needed else frozenset(),
            required_teams=frozenset({"traffic_civility"}) if u[2] < shape.team_needed else frozenset(),
            required_certificates=frozenset({"first_aid"}) if u[3] < shape.certificate_needed else frozenset(),
            min_star=3 if u[4] < shape.star_needed else 1, core_only=core, priority=int(rng.integers(1, 6)),
            max_distance_km=shape.reach_km if u[6] < shape.reach_limited else None,
        ))
    return AssignmentProblem(volunteers, posts)


def every_feasible_pair(problem: AssignmentProblem) -> tuple[np.ndarray, np.ndarray]:
    """All (volunteer, post) pairs that satisfy every hard constraint."""
    nv, npost = len(problem.volunteers), len(problem.posts)
    vi, pi = np.repeat(np.arange(nv), npost), np.tile(np.arange(npost), nv)
    ok = problem.feasible(vi, pi)
    return vi[ok], pi[ok]


@dataclass
class DenseOptimum:
    """The exact optimum over every feasible pair: heads filled, their pair cost, and the penalty of the empty ones."""

    heads: int
    cost: float
    penalty_units: int


def dense_optimum(problem: AssignmentProblem) -> DenseOptimum:
    """The oracle: the same objective solved exactly on the complete bipartite graph (no sampling, no widening)."""
    vi, pi = every_feasible_pair(problem)
    chosen, penalty = min_cost_fill(problem, vi, pi, fill_all=False)
    return DenseOptimum(heads=int(chosen.sum()), cost=float(problem.cost(vi[chosen], pi[chosen]).sum()), penalty_units=penalty)
