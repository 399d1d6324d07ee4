"""Where the heads come from, planned on map cells before the planner's first graph is built (pure, no I/O).

Each post's nearest volunteers and each volunteer's nearest posts stay inside a zone; where a zone asks more heads
than it has volunteers nearby, the first graph needs arcs from the right volunteers of other zones. This module
finds them: volunteers and posts are binned into map cells, a transport problem (min-cost flow, cell centre to cell
centre) sends each post cell's heads from the volunteer cells nearest by distance, and every volunteer cell that sends
heads to a post cell contributes its members nearest that cell, with arcs spread over the posts there nearest the
sender that hold the heads sent (farther senders choose first; a post's heads are allotted once while any are left).
The cell plan ignores qualifications (split by class, its cells had to be coarser and its first plan travelled
more); it only proposes arcs: the planner's flow and pricing decide and prove the plan.
"""

from __future__ import annotations

import numpy as np
from ortools.graph.python import min_cost_flow

CELL_ARCS_LEAST = 100_000  # volunteer cells × post cells allowed in the transport problem at least …
CELL_ARCS_PER_VOLUNTEER = 2  # … or this many per volunteer where more (cells grow ×1.5 until the problem fits)
FIRST_CELL_KM = 2.0  # the finest cell edge tried
MEMBERS_PER_HEAD = 2  # a volunteer cell offers this many of its members per head it sends to a post cell (+ `SPARE`)
SPARE_MEMBERS = 4
POSTS_PER_MEMBER = 4  # each offered member gets arcs to this many neighbouring posts (by rank) of the receiving cell
UNITS_PER_KM = 1_000


def cells(points_km: np.ndarray, edge_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Each point's cell (a dense index) and the cells' centres, on a cubic grid of `edge_km` over 3-D points in km."""
    grid = np.floor(points_km / edge_km).astype(np.int64)
    grid -= grid.min(axis=0)
    span = grid.max(axis=0) + 1
    _, cell_of = np.unique((grid[:, 0] * span[1] + grid[:, 1]) * span[2] + grid[:, 2], return_inverse=True)
    counts = np.bincount(cell_of)
    centres = np.stack([np.bincount(cell_of, weights=points_km[:, axis]) for axis in range(3)], axis=1) / counts[:, None]
    return cell_of, centres


def transport(supply: np.ndarray, demand: np.ndarray, km: np.ndarray) -> np.ndarray:
    """Units sent from each supplier to each consumer (dense matrix) by the least total travel, `km` apart (dense)."""
    nv, np_ = len(supply), len(demand)
    va, pa = np.repeat(np.arange(nv), np_), np.tile(np.arange(np_), nv)
    km = km.ravel()
    source, sink = nv + np_, nv + np_ + 1
    heads = int(min(supply.sum(), demand.sum()))
    tails = np.concatenate([np.full(nv, source), va, nv + np.arange(np_)])
    arc_heads = np.concatenate([np.arange(nv), nv + pa, np.full(np_, sink)])
    caps = np.concatenate([supply, np.full(len(va), heads), demand]).astype(np.int64)
    costs = np.concatenate([np.zeros(nv), np.rint(km * UNITS_PER_KM), np.zeros(np_)]).astype(np.int64)
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), arc_heads.astype(np.int32), caps, costs)
    supplies = np.zeros(sink + 1, np.int64)
    supplies[source], supplies[sink] = heads, -heads
    flow.set_nodes_supplies(np.arange(sink + 1), supplies)
    if flow.solve() != flow.OPTIMAL:
        raise RuntimeError("the transport problem failed")
    return flow.flows(np.arange(nv, nv + len(va))).reshape(nv, np_)


def cross_cell_pairs(v_points_km: np.ndarray, p_points_km: np.ndarray, p_heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (volunteer, post) index pairs that carry the cell plan's supply between cells.

    `v_points_km` / `p_points_km`: the volunteers' (only those who may serve) and the posts' places as 3-D points in
    km (unit vectors × the earth's radius); `p_heads`: each post's heads. The pairs index those two arrays.
    """
    with_heads = np.flatnonzero(p_heads > 0)
    if len(v_points_km) == 0 or len(with_heads) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    edge, most = FIRST_CELL_KM, max(CELL_ARCS_LEAST, CELL_ARCS_PER_VOLUNTEER * len(v_points_km))
    while True:
        v_cell, v_centres = cells(v_points_km, edge)
        p_cell, p_centres = cells(p_points_km[with_heads], edge)
        if len(v_centres) * len(p_centres) <= most:
            break
        edge *= 1.5
    supply = np.bincount(v_cell, minlength=len(v_centres))
    demand = np.bincount(p_cell, weights=p_heads[with_heads], minlength=len(p_centres)).astype(np.int64)
    sent = transport(supply, demand, np.linalg.norm(v_centres[:, None, :] - p_centres[None, :, :], axis=2))
    members = np.argsort(v_cell, kind="stable")
    first = np.concatenate([[0], np.cumsum(supply)])
    post_members = np.argsort(p_cell, kind="stable")
    post_first = np.concatenate([[0], np.cumsum(np.bincount(p_cell, minlength=len(p_centres)))])
    open_heads = p_heads.astype(np.int64).copy()  # heads of each post not yet allotted to a sending cell
    pair_v, pair_p = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    senders, receivers = np.nonzero(sent)
    far_first = np.lexsort((-np.linalg.norm(v_centres[senders] - p_centres[receivers], axis=1), receivers))
    for a, b in zip(senders[far_first].tolist(), receivers[far_first].tolist(), strict=True):
        heads = int(sent[a, b])
        mine = members[first[a]:first[a + 1]]  # the sending cell's members nearest the receiving cell …
        order = np.argsort(np.linalg.norm(v_points_km[mine] - p_centres[b], axis=1), kind="stable")
        mine = mine[order[:MEMBERS_PER_HEAD * heads + SPARE_MEMBERS]]
        theirs = with_heads[post_members[post_first[b]:post_first[b + 1]]]  # … to the receiving posts nearest it
        theirs = theirs[np.argsort(np.linalg.norm(p_points_km[theirs] - v_centres[a], axis=1), kind="stable")]
        left = theirs[open_heads[theirs] > 0]
        theirs = left if len(left) else theirs  # that still have heads no farther sending cell was given
        covered = np.cumsum(open_heads[theirs])
        theirs = theirs[:int(np.searchsorted(covered, heads)) + 1]  # as many as hold the heads sent
        open_heads[theirs] -= np.diff(np.minimum(covered[:len(theirs)], heads), prepend=0)
        # spread by rank so the posts' heads, not only the nearest post's, are within the members' reach
        at = np.minimum(np.arange(len(mine)) * len(theirs) // len(mine), len(theirs) - 1)
        window = np.clip(at[:, None] + np.arange(POSTS_PER_MEMBER) - POSTS_PER_MEMBER // 2, 0, len(theirs) - 1)
        pair_v.append(np.repeat(mine, POSTS_PER_MEMBER))
        pair_p.append(theirs[window].ravel())
    return np.concatenate(pair_v), np.concatenate(pair_p)
