"""Choices beside the optimal plan (pure, no I/O): why a short post stays short, the nearest N for an emergency,
and whom a backfill wave invites."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dispatch.solver import AssignmentProblem, Plan

RESERVE_BONUS_KM = 2.0  # backfill prefers reserve volunteers this much


SHORTFALL_REASONS = ("no_one_qualified_within_reach", "shift_overlap", "qualified_all_taken")


def shortfall_reasons(problem: AssignmentProblem, plan: Plan, post_ids: Sequence[int]) -> dict[int, dict]:
    """Why each of `post_ids` stays short in a fill-optimal plan, with the counts behind the reason.

    Qualified within reach = every hard constraint but shifts already held; of those, some hold an overlapping shift,
    the rest (the eligible pool) serve here or at other posts of the plan — none is idle, or the plan would not be
    fill-optimal. The reason is the first that applies: qualified people taken by other posts, else people kept away
    by overlapping shifts, else too few qualified people within reach at all.
    """
    everyone = np.flatnonzero(problem.v_active)
    post_of = np.full(len(problem.volunteers), -1, np.int64)
    post_of[plan.volunteer_index] = plan.post_index
    out = {}
    for p in post_ids:
        at = np.full(len(everyone), int(p))
        qualified = problem._check(everyone, at, held_shifts=False)
        if np.isfinite(problem.p_reach_km[p]):
            qualified &= problem.distance_km(everyone, at) <= problem.p_reach_km[p]
        free = qualified & ~problem.v_conflict[everyone, problem.p_window[p]]
        here = int((free & (post_of[everyone] == p)).sum())
        elsewhere = int((free & (post_of[everyone] >= 0) & (post_of[everyone] != p)).sum())
        overlapping = int(qualified.sum() - free.sum())
        reason = SHORTFALL_REASONS[2] if elsewhere else SHORTFALL_REASONS[1] if overlapping else SHORTFALL_REASONS[0]
        out[int(p)] = {
            "reason": reason, "qualified_within_reach": int(qualified.sum()), "holding_overlapping_shifts": overlapping,
            "eligible_pool": int(free.sum()), "serving_here": here, "taken_by_other_posts": elsewhere,
        }
    return out


def nearest_available(problem: AssignmentProblem, post: int, *, count: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """The `count` nearest volunteers who may take `post` (emergency mode), nearest first."""
    everyone = np.arange(len(problem.volunteers))
    ok = problem.feasible(everyone, np.full(len(everyone), post))
    if exclude is not None:
        ok &= ~exclude
    candidates = everyone[ok]
    order = np.argsort(problem.distance_km(candidates, np.full(len(candidates), post)), kind="stable")
    return candidates[order[:count]]


def choose_backfill(problem: AssignmentProblem, post: int, *, expected_short: float, exclude: np.ndarray | None = None, max_invites: int | None = None) -> np.ndarray:
    """Who to invite so the expected turnout covers `expected_short` heads: reserve and nearby first, over-inviting by reliability."""
    if expected_short <= 0:
        return np.empty(0, np.int64)
    everyone = np.arange(len(problem.volunteers))
    ok = problem.feasible(everyone, np.full(len(everyone), post))
    if exclude is not None:
        ok &= ~exclude
    candidates = everyone[ok]
    score = problem.cost(candidates, np.full(len(candidates), post)) - RESERVE_BONUS_KM * problem.v_reserve[candidates]
    candidates = candidates[np.argsort(score, kind="stable")]
    expected = np.cumsum(np.clip(problem.v_reliability[candidates], 0.05, 1.0))
    count = int(np.searchsorted(expected, expected_short - 1e-9) + 1)
    limit = max_invites if max_invites is not None else math.ceil(3 * expected_short) + 1
    return candidates[: min(count, limit, len(candidates))]
