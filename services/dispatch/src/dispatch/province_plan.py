"""The planner at province scale (#22): one county-sized problem per zone, with the supply between zones fixed by a
transport (pure, no I/O).

A province (130,000 volunteers, 15,000 posts in 30 zones) is ten counties side by side; one min-cost flow over all
of it (2 M arcs, repriced a dozen times) took minutes. Here posts close together form a part (a zone; a part asking
more than `PART_HEADS_MOST` heads is split again where its zones are farthest apart), a transport from volunteer
cells to the parts (`supply_plan.transport`) sends each part its heads, each volunteer goes to the part its cell
sends it to (the members nearest that part first; the ones not sent, to the part of the post nearest them), and
every part, sliced from the compiled problem, is planned on its own by the exact planner through `map_parts` (a pool
of worker processes in the service). The parts' plans are joined; if they fill fewer (or less important) heads than
the province's fill bound, one flow over their pairs, the bound's witness and the short posts' nearest free
volunteers fills them, so the plan never fills fewer heads than the bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from dispatch.solver import (
    EARTH_RADIUS_KM,
    AssignmentProblem,
    Plan,
    _cost_units,
    _distinct,
    _nearest_feasible_volunteers,
    _penalty_units,
    _unit_vectors,
    fill_bound,
    min_cost_fill,
    solve,
)
from dispatch.supply_plan import cells, transport

PROVINCE_PAIRS = 500_000_000  # active volunteers × posts with heads above which the plan is made by parts
PART_HEADS_MOST = 12_000  # a part asks at most this many heads (a county summit is 10,800)
POST_CELL_KM = 4.0  # posts are grouped into parts on cells of this edge …
LINK_KM = 8.0  # … cells whose centres are this near (or linked through such) being one part
VOLUNTEER_CELL_KM = 2.0  # volunteers are sent to parts by cells of this edge
PART_PRICE_ROUNDS = 1  # each part: one flow, one pricing round, one flow again (more rounds: +4 s for −0.3 % km)


@dataclass(frozen=True)
class PartPlan:
    """One part's plan, in the part's own indices."""

    volunteer_index: np.ndarray
    post_index: np.ndarray
    edges: int
    rounds: int


def solve_part(part: AssignmentProblem) -> PartPlan:
    """Plan one part with the exact planner (run in a worker process)."""
    plan = solve(part, price_rounds=PART_PRICE_ROUNDS)
    return PartPlan(plan.volunteer_index, plan.post_index, plan.edges, plan.rounds)


def part_problem(problem: AssignmentProblem, vi: np.ndarray, pi: np.ndarray) -> AssignmentProblem:
    """The compiled problem of one part: every per-volunteer and per-post array of `problem` sliced to volunteers
    `vi` and posts `pi` (nothing compiled again, and only arrays to hand to a worker, not objects to unpickle)."""
    part = object.__new__(AssignmentProblem)
    for name, value in vars(problem).items():  # p_representative is per profile: found again below
        per_post = name.startswith("p_") and name != "p_representative"
        part.__dict__[name] = value[vi] if name.startswith("v_") else value[pi] if per_post else value
    part.volunteers, part.posts = range(len(vi)), range(len(pi))  # only their lengths are read once compiled
    if problem._profile_table is not None:
        part._profile_table = problem._profile_table[vi]
    part.p_representative = np.zeros(problem.profile_count, dtype=np.int64)  # per profile, a post of it in the part
    part.p_representative[part.p_profile[::-1]] = np.arange(len(pi))[::-1]
    return part


def by_parts(problem: AssignmentProblem) -> bool:
    """Is the problem large enough to be planned by parts?"""
    return int(problem.v_active.sum()) * int((problem.p_headcount > 0).sum()) > PROVINCE_PAIRS


def may_be_by_parts(volunteers: int, posts: int) -> bool:
    """Could a problem of this many volunteers and posts be planned by parts (`by_parts`, before it is compiled: all of
    them counted, so never False where `by_parts` is True)?"""
    return volunteers * posts > PROVINCE_PAIRS


def plan(problem: AssignmentProblem, *, map_parts: Callable[[Callable, Iterable], Iterable] = map) -> Plan:
    """The plan: by the exact planner up to province scale, above it by zones (`map_parts` runs `solve_part`)."""
    if not by_parts(problem):
        return solve(problem)
    volunteer_parts, post_parts = zone_parts(problem)
    if len(post_parts) < 2:
        return solve(problem)
    order = sorted(range(len(post_parts)), key=lambda i: -int(problem.p_headcount[post_parts[i]].sum()))  # big first
    inputs = [part_problem(problem, volunteer_parts[i], post_parts[i]) for i in order]
    planned = map_parts(solve_part, inputs)  # a pool has the parts now: the bound is found meanwhile
    bound = fill_bound(problem)
    vi, pi, edges, rounds = [], [], 0, 0
    for i, part in zip(order, planned, strict=True):
        vi.append(volunteer_parts[i][part.volunteer_index])
        pi.append(post_parts[i][part.post_index])
        edges, rounds = edges + part.edges, max(rounds, part.rounds)
    vi, pi = np.concatenate(vi), np.concatenate(pi)
    unfilled = problem.p_headcount - np.bincount(pi, minlength=len(problem.posts))
    if int(np.dot(unfilled, _penalty_units(problem))) != bound.penalty:
        vi, pi = _fill_to_bound(problem, vi, pi, unfilled, bound)
        unfilled = problem.p_headcount - np.bincount(pi, minlength=len(problem.posts))
        rounds += 1  # the repair flow
    return Plan(
        volunteer_index=vi, post_index=pi, distance_km=problem.distance_km(vi, pi), unfilled=unfilled,
        cost=float(problem.cost(vi, pi).sum()), edges=edges, rounds=rounds, bound_heads=bound.heads,
        travel_gap=math.inf,  # each part is proven within tolerance of its own optimum; the province is not
    )


def _fill_to_bound(
    problem: AssignmentProblem, vi: np.ndarray, pi: np.ndarray, short: np.ndarray, bound
) -> tuple[np.ndarray, np.ndarray]:
    """One flow over the parts' pairs (`short`: the heads they leave per post), the bound's witness and the short
    posts' nearest free volunteers: the bound's fill, travelling as little as those pairs allow."""
    nposts = len(problem.posts)
    posts = np.flatnonzero(short > 0)
    free = np.ones(len(problem.volunteers), dtype=bool)
    free[vi] = False
    sv, sp = _nearest_feasible_volunteers(problem, posts, 2 * short[posts] + 4, among=free)
    key = _distinct(np.concatenate([vi, bound.pair_v, sv]) * nposts + np.concatenate([pi, bound.pair_p, sp]))
    pair_v, pair_p = key // nposts, key % nposts
    chosen, penalty = min_cost_fill(problem, pair_v, pair_p, fill_all=bound.heads == problem.slot_count,
                                    units=_cost_units(problem, pair_v, pair_p))
    if penalty != bound.penalty:  # cannot happen: the witness is in the graph
        raise RuntimeError(f"plan penalty {penalty} differs from the fill bound {bound.penalty}")
    return pair_v[chosen], pair_p[chosen]


def zone_parts(problem: AssignmentProblem) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The parts: per part, its volunteers and its posts (indices of the problem); active volunteers and posts with
    heads only, each in one part."""
    active = np.flatnonzero(problem.v_active)
    with_heads = np.flatnonzero(problem.p_headcount > 0)
    if len(active) == 0 or len(with_heads) == 0:
        return [], []
    v_points = EARTH_RADIUS_KM * _unit_vectors(problem.v_lat[active], problem.v_lon[active])
    p_points = EARTH_RADIUS_KM * _unit_vectors(problem.p_lat[with_heads], problem.p_lon[with_heads])
    heads = problem.p_headcount[with_heads]
    p_cell, p_centres = cells(p_points, POST_CELL_KM)
    part_of_cell = _post_cell_parts(p_centres, np.bincount(p_cell, weights=heads, minlength=len(p_centres)))
    post_part = part_of_cell[p_cell]
    parts = int(part_of_cell.max()) + 1
    trees = [cKDTree(p_points[post_part == k]) for k in range(parts)]
    part_heads = np.bincount(post_part, weights=heads, minlength=parts).astype(np.int64)
    v_part = _volunteer_parts(v_points, trees, part_heads, cKDTree(p_points), post_part)
    return [active[v_part == k] for k in range(parts)], [with_heads[post_part == k] for k in range(parts)]


def _post_cell_parts(centres: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Each post cell's part: cells linked within `LINK_KM` (or through such cells); a part asking more than
    `PART_HEADS_MOST` heads is split again at a shorter link (its zones come apart where they are farthest apart),
    and only when no link splits it, halved across its longest axis by heads."""
    part_of = np.full(len(centres), -1, np.int64)
    pending = [(np.arange(len(centres)), LINK_KM)]
    parts = 0
    while pending:
        group, link = pending.pop()
        if heads[group].sum() <= PART_HEADS_MOST or len(group) < 2:
            part_of[group] = parts
            parts += 1
        elif link >= POST_CELL_KM:
            pending += [(group[component == c], link / 1.25) for c in range(int(component.max()) + 1)] if (
                component := _linked(centres[group], link)).max() > 0 else [(group, link / 1.25)]
        else:
            spread = centres[group] - np.average(centres[group], axis=0, weights=heads[group])
            axis = np.linalg.svd(spread * np.sqrt(heads[group])[:, None], full_matrices=False)[2][0]
            ordered = group[np.argsort(spread @ axis, kind="stable")]
            cut = int(np.clip(np.searchsorted(np.cumsum(heads[ordered]), heads[group].sum() / 2), 1, len(group) - 1))
            pending += [(ordered[:cut], POST_CELL_KM), (ordered[cut:], POST_CELL_KM)]
    return part_of


def _linked(centres: np.ndarray, link_km: float) -> np.ndarray:
    """Each point's component when points within `link_km` of each other are linked."""
    linked = np.array(sorted(cKDTree(centres).query_pairs(link_km)), dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(linked)), (linked[:, 0], linked[:, 1])), shape=(len(centres), len(centres)))
    return connected_components(graph, directed=False)[1]


def _volunteer_parts(
    v_points: np.ndarray, trees: list[cKDTree], part_heads: np.ndarray, nearest_post: cKDTree, post_part: np.ndarray
) -> np.ndarray:
    """Each volunteer's part: a transport from volunteer cells to parts (a cell's distance to a part is to the
    part's nearest post) sends each part its heads; a cell's members nearest a part it sends to go there (farther
    parts choosing first), the rest to the part whose nearest post is nearest them."""
    v_cell, v_centres = cells(v_points, VOLUNTEER_CELL_KM)
    supply = np.bincount(v_cell, minlength=len(v_centres))
    sent = transport(supply, part_heads, np.stack([tree.query(v_centres, k=1)[0] for tree in trees], axis=1))
    v_part = post_part[nearest_post.query(v_points, k=1)[1]]  # the part whose nearest post is nearest
    members = np.argsort(v_cell, kind="stable")
    first = np.concatenate([[0], np.cumsum(supply)])
    for a in np.flatnonzero(sent.sum(axis=1) > 0).tolist():
        mine = members[first[a]:first[a + 1]]
        targets = np.flatnonzero(sent[a])
        km = np.stack([trees[k].query(v_points[mine], k=1)[0] for k in targets], axis=1)  # members × targets
        left = np.ones(len(mine), dtype=bool)
        for t in np.argsort(-km.mean(axis=0), kind="stable").tolist():
            candidates = np.flatnonzero(left)
            take = candidates[np.argsort(km[candidates, t], kind="stable")[:int(sent[a, targets[t]])]]
            v_part[mine[take]] = targets[t]
            left[take] = False
    return v_part
