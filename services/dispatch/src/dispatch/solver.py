"""The assignment planner: volunteers to post slots by a min-cost flow on a sparse candidate graph (pure, no I/O).

A post of headcount h is h identical slots; rather than expanding them into h matrix rows, the post is
one flow node of capacity h (the same optimum as the slot-expanded bipartite matching, with h times fewer
arcs). Hard constraints decide which (volunteer, post) pairs are feasible; the cost of a pair is its travel
distance plus small star and fairness terms, and each head left unfilled costs a penalty that dwarfs any
distance and doubles with each priority level, so the optimum fills most heads by priority first, then
travels least. The candidate graph is sparse: each volunteer's k nearest feasible posts plus each post's
nearest feasible volunteers; a max-flow check finds posts the graph cannot fill and widens them to the
nearest free volunteers (then to all feasible ones) before OR-Tools' min-cost flow finds the optimum.
Every post also has an "unfilled" arc from the source, so a solution always exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import chain
from zoneinfo import ZoneInfo

import numpy as np
from ortools.graph.python import min_cost_flow
from scipy.spatial import cKDTree

from dispatch.supply_plan import cross_cell_pairs

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
EARTH_RADIUS_KM = 6371.0088
HALF_HOURS_PER_WEEK = 7 * 48
AVAILABILITY_WORDS = 6  # 6 × 64 bits ≥ 336 half-hours of a week
NO_EXPIRY = 10**7  # a day ordinal later than any real date
STAR_WEIGHT_KM = 0.05  # one star less costs as much as 50 m more travel
LOAD_WEIGHT_KM = 0.1  # each recent assignment costs as much as 100 m more travel
COST_UNITS_PER_KM = 1_000  # the flow solver works in integers: metres
PROFILE_TABLE_LIMIT = 4_000_000  # volunteers × distinct post requirements precomputed at most
UNFILLED_BASE = 1e4  # km: far above any travel a chain of swaps could save


@dataclass(frozen=True)
class Volunteer:
    """What the planner knows of a volunteer (from the local read model)."""

    id: str
    lat: float | None
    lon: float | None
    star: int = 1
    core: bool = False
    active: bool = True  # status active (being behind on training does not change it)
    specialised_eligible: bool = True  # False: behind on training past the notice, so no post requiring a team or skill
    recruitment_mode: str = "long_term"
    skills: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    certificates: tuple[tuple[str, date | None], ...] = ()  # (code, expires_on or None)
    availability: tuple[tuple[int, int, int], ...] = ()  # (weekday 0=Mon, start minute, end minute) local; () = any time
    busy: tuple[tuple[datetime, datetime], ...] = ()  # shifts already held, in any operation
    load: float = 0.0  # recent assignments, for fairness
    reliability: float = 0.8  # expected probability of accepting and showing up


@dataclass(frozen=True)
class Post:
    """A post of an operation: where, when, how many, who qualifies and how much it matters."""

    id: str
    lat: float
    lon: float
    shift_start: datetime
    shift_end: datetime
    headcount: int
    required_skills: frozenset[str] = frozenset()
    required_teams: frozenset[str] = frozenset()  # any one of them
    required_certificates: frozenset[str] = frozenset()
    min_star: int = 1
    core_only: bool = False
    priority: int = 3  # 1 most important … 5 least
    max_distance_km: float | None = None  # only volunteers this close may take it


def unfilled_penalty(priority: int) -> float:
    """What one empty slot of a post of `priority` costs: each level up doubles it."""
    return UNFILLED_BASE * 2.0 ** (5 - min(max(priority, 1), 5))


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (works on scalars and numpy arrays)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _bits(codes_per_row: Sequence[frozenset[str]], vocabulary: dict[str, int], words: int) -> np.ndarray:
    out = np.zeros((len(codes_per_row), words), dtype=np.uint64)
    for row, codes in enumerate(codes_per_row):
        for code in codes:
            bit = vocabulary.get(code)
            if bit is not None:
                out[row, bit // 64] |= np.uint64(1) << np.uint64(bit % 64)
    return out


def _minute_of_week(moment: datetime) -> float:
    local = moment.astimezone(LOCAL_TZ)
    return local.weekday() * 1440 + local.hour * 60 + local.minute + local.second / 60


def _shift_need(start: datetime, end: datetime) -> np.ndarray:
    """The half-hours of the week a shift occupies, as availability bits (local time)."""
    need = np.zeros(AVAILABILITY_WORDS * 64, dtype=bool)
    if end - start >= timedelta(days=7):
        need[:HALF_HOURS_PER_WEEK] = True
    else:
        begin = _minute_of_week(start)
        first = math.floor(begin / 30)
        last = math.ceil((begin + (end - start).total_seconds() / 60) / 30)
        need[np.arange(first, max(last, first + 1)) % HALF_HOURS_PER_WEEK] = True
    return need


def _pack(bools: np.ndarray) -> np.ndarray:
    return np.packbits(bools, axis=-1, bitorder="little").view("<u8").astype(np.uint64)


@dataclass
class AssignmentProblem:
    """Volunteers and posts compiled to arrays, with the feasibility and cost of any (volunteer, post) pair."""

    volunteers: Sequence[Volunteer]
    posts: Sequence[Post]
    v_lat: np.ndarray = field(init=False)
    v_lon: np.ndarray = field(init=False)
    p_lat: np.ndarray = field(init=False)
    p_lon: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        vols, posts = self.volunteers, self.posts
        nv = len(vols)
        self.v_has_place = np.array([v.lat is not None and v.lon is not None for v in vols], dtype=bool)
        self.v_lat = np.array([v.lat if v.lat is not None else 0.0 for v in vols], dtype=float)
        self.v_lon = np.array([v.lon if v.lon is not None else 0.0 for v in vols], dtype=float)
        self.v_star = np.array([v.star for v in vols], dtype=np.int16)
        self.v_core = np.array([v.core for v in vols], dtype=bool)
        self.v_active = np.array([v.active for v in vols], dtype=bool) & self.v_has_place
        self.v_specialised = np.array([v.specialised_eligible for v in vols], dtype=bool)
        self.v_load = np.array([v.load for v in vols], dtype=float)
        self.v_reliability = np.array([v.reliability for v in vols], dtype=float)
        self.v_reserve = np.array([v.recruitment_mode == "reserve" for v in vols], dtype=bool)
        self.p_lat = np.array([p.lat for p in posts], dtype=float)
        self.p_lon = np.array([p.lon for p in posts], dtype=float)
        self.p_headcount = np.array([max(0, p.headcount) for p in posts], dtype=np.int64)
        self.p_min_star = np.array([p.min_star for p in posts], dtype=np.int16)
        self.p_core_only = np.array([p.core_only for p in posts], dtype=bool)
        self.p_priority = np.array([p.priority for p in posts], dtype=np.int16)
        self.p_reach_km = np.array([p.max_distance_km or np.inf for p in posts], dtype=float)
        self.any_reach_limit = bool(np.isfinite(self.p_reach_km).any())

        skills = {c: i for i, c in enumerate(sorted({c for p in posts for c in p.required_skills}))}
        teams = {c: i for i, c in enumerate(sorted({c for p in posts for c in p.required_teams}))}
        certs = sorted({c for p in posts for c in p.required_certificates})
        ws, wt = max(1, math.ceil(len(skills) / 64)), max(1, math.ceil(len(teams) / 64))
        self.v_skills = _bits([v.skills for v in vols], skills, ws)
        self.p_skills = _bits([p.required_skills for p in posts], skills, ws)
        self.v_teams = _bits([v.teams for v in vols], teams, wt)
        self.p_teams = _bits([p.required_teams for p in posts], teams, wt)
        self.p_needs_team = np.array([bool(p.required_teams) for p in posts], dtype=bool)
        self.p_specialised = np.array([bool(p.required_teams or p.required_skills) for p in posts], dtype=bool)

        self.v_cert_expiry = np.full((nv, len(certs)), -1, dtype=np.int64)
        cert_index = {c: i for i, c in enumerate(certs)}
        for row, v in enumerate(vols):
            for code, expires in v.certificates:
                col = cert_index.get(code)
                if col is not None:
                    self.v_cert_expiry[row, col] = max(self.v_cert_expiry[row, col], expires.toordinal() if expires else NO_EXPIRY)
        self.p_cert_required = np.array(
            [[c in p.required_certificates for c in certs] for p in posts], dtype=bool
        ).reshape(len(posts), len(certs))
        self.p_end_day = np.array([p.shift_end.astimezone(LOCAL_TZ).date().toordinal() for p in posts], dtype=np.int64)

        available = np.zeros((nv, AVAILABILITY_WORDS * 64), dtype=bool)
        for row, v in enumerate(vols):
            if not v.availability:
                available[row, :] = True
                continue
            for weekday, start_min, end_min in v.availability:
                first, last = weekday * 48 + math.ceil(start_min / 30), weekday * 48 + end_min // 30
                available[row, first:last] = True
        self.v_available = _pack(available)
        self.p_need = _pack(np.array([_shift_need(p.shift_start, p.shift_end) for p in posts]).reshape(len(posts), -1))

        windows: dict[tuple[datetime, datetime], int] = {}
        self.p_window = np.array([windows.setdefault((p.shift_start, p.shift_end), len(windows)) for p in posts], dtype=np.int64)
        self.v_conflict = np.zeros((nv, max(1, len(windows))), dtype=bool)
        for row, v in enumerate(vols):
            for busy_start, busy_end in v.busy:
                for (start, end), col in windows.items():
                    if busy_start < end and start < busy_end:
                        self.v_conflict[row, col] = True

        self._profile_table: np.ndarray | None = None
        profiles: dict[tuple, int] = {}
        self.p_profile = np.array([
            profiles.setdefault(
                (p.required_skills, p.required_teams, p.required_certificates, p.min_star, p.core_only, p.shift_start, p.shift_end),
                len(profiles),
            )
            for p in posts
        ], dtype=np.int64)
        self.profile_count = len(profiles)
        self.p_representative = np.zeros(len(profiles), dtype=np.int64)
        self.p_representative[self.p_profile[::-1]] = np.arange(len(posts))[::-1]
        if nv * len(profiles) <= PROFILE_TABLE_LIMIT and len(posts):
            self._profile_table = self.qualification_table()

    def qualification_table(self) -> np.ndarray:
        """Volunteers × requirement profiles: may the volunteer take a post of that profile, reach aside?"""
        if self._profile_table is not None:
            return self._profile_table
        nv, npro = len(self.volunteers), self.profile_count
        table = np.zeros((nv, npro), dtype=bool)
        step = max(1, PROFILE_TABLE_LIMIT // max(1, npro))
        for first in range(0, nv, step):
            rows = np.arange(first, min(nv, first + step))
            table[rows] = self._check(np.repeat(rows, npro), np.tile(self.p_representative, len(rows))).reshape(len(rows), npro)
        return table

    @property
    def slot_count(self) -> int:
        """How many heads all posts ask for."""
        return int(self.p_headcount.sum())

    def feasible(self, vi: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """For each pair (vi[i], pi[i]): may that volunteer take that post (every hard constraint)?"""
        vi, pi = np.asarray(vi, dtype=np.int64), np.asarray(pi, dtype=np.int64)
        if self._profile_table is not None:  # posts with the same requirements and window share one column
            ok = self._profile_table[vi, self.p_profile[pi]]
        else:
            ok = self._check(vi, pi)
        if self.any_reach_limit:
            ok = ok & (self.distance_km(vi, pi) <= self.p_reach_km[pi])
        return ok

    def _check(self, vi: np.ndarray, pi: np.ndarray, *, held_shifts: bool = True) -> np.ndarray:
        """Every hard constraint (reach aside, held shifts optionally too), evaluated pair by pair."""
        ok = self.v_active[vi] & (self.v_star[vi] >= self.p_min_star[pi]) & (self.v_core[vi] | ~self.p_core_only[pi])
        ok &= np.all((self.v_skills[vi] & self.p_skills[pi]) == self.p_skills[pi], axis=1)
        ok &= ~self.p_needs_team[pi] | np.any((self.v_teams[vi] & self.p_teams[pi]) != 0, axis=1)
        ok &= ~self.p_specialised[pi] | self.v_specialised[vi]  # specialised duty: a team or a skill required
        for col in range(self.p_cert_required.shape[1]):
            ok &= ~self.p_cert_required[pi, col] | (self.v_cert_expiry[vi, col] >= self.p_end_day[pi])
        ok &= np.all((self.v_available[vi] & self.p_need[pi]) == self.p_need[pi], axis=1)
        if held_shifts:
            ok &= ~self.v_conflict[vi, self.p_window[pi]]
        return ok

    def distance_km(self, vi: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """Travel distance of each pair."""
        return haversine_km(self.v_lat[vi], self.v_lon[vi], self.p_lat[pi], self.p_lon[pi])

    def cost(self, vi: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """The cost of each pair: distance, then fewer stars and more recent load cost a little more."""
        return (
            self.distance_km(vi, pi)
            + STAR_WEIGHT_KM * (5 - self.v_star[vi])
            + LOAD_WEIGHT_KM * self.v_load[vi]
        )


@dataclass
class Plan:
    """The planner's answer: who goes where, what stays empty and how it was found."""

    volunteer_index: np.ndarray
    post_index: np.ndarray
    distance_km: np.ndarray
    unfilled: np.ndarray  # per post
    cost: float  # total pair cost of the assignments (no penalties)
    edges: int
    rounds: int
    bound_heads: int  # the most heads any plan can fill (proved on the complete feasibility structure)
    travel_gap: float = math.inf  # proven bound on how much cheaper any plan with the same heads per post could travel (share)

    @property
    def assigned(self) -> int:
        """How many volunteers were assigned."""
        return len(self.volunteer_index)


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer array (faster than np.unique's hashing here)."""
    ordered = np.sort(keys)
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def _nearest_feasible_posts(problem: AssignmentProblem, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each active volunteer's k nearest feasible posts, as pair arrays; widens the search where too few."""
    posts = len(problem.posts)
    active = np.flatnonzero(problem.v_active)
    if posts == 0 or len(active) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    tree = cKDTree(_unit_vectors(problem.p_lat, problem.p_lon))
    points = _unit_vectors(problem.v_lat, problem.v_lon)
    out_v, out_p = [], []
    rows, reach = active, min(posts, 4 * k)
    while len(rows):
        _, idx = tree.query(points[rows], k=reach)
        idx = idx.reshape(len(rows), reach)
        vi = np.repeat(rows, reach)
        ok = problem.feasible(vi, idx.ravel()).reshape(len(rows), reach)
        rank = np.cumsum(ok, axis=1)
        keep = ok & (rank <= k)
        out_v.append(vi[keep.ravel()])
        out_p.append(idx[keep])
        short = rank[:, -1] < k
        if reach >= posts:
            break
        rows, reach = rows[short], min(posts, reach * 4)
    return np.concatenate(out_v), np.concatenate(out_p)


def _nearest_feasible_volunteers(
    problem: AssignmentProblem, post_ids: np.ndarray, per_post: np.ndarray, *, among: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each post in `post_ids`, its `per_post` nearest feasible volunteers (of `among`), widening up to all."""
    active = np.flatnonzero(problem.v_active if among is None else problem.v_active & among)
    if len(active) == 0 or len(post_ids) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    tree = cKDTree(_unit_vectors(problem.v_lat[active], problem.v_lon[active]))
    points = _unit_vectors(problem.p_lat, problem.p_lon)
    out_v, out_p = [], []
    rows, want = np.asarray(post_ids, dtype=np.int64), np.asarray(per_post, dtype=np.int64)
    reach = int(min(len(active), max(8, 4 * want.max())))
    while len(rows):
        _, idx = tree.query(points[rows], k=reach)
        idx = active[idx.reshape(len(rows), reach)]
        pi = np.repeat(rows, reach)
        ok = problem.feasible(idx.ravel(), pi).reshape(len(rows), reach)
        rank = np.cumsum(ok, axis=1)
        keep = ok & (rank <= want[:, None])
        out_v.append(idx[keep])
        out_p.append(pi[keep.ravel()])
        short = rank[:, -1] < want
        if reach >= len(active):
            break
        rows, want, reach = rows[short], want[short], min(len(active), reach * 4)
    return np.concatenate(out_v), np.concatenate(out_p)


def _supply_plan_pairs(problem: AssignmentProblem) -> tuple[np.ndarray, np.ndarray]:
    """The feasible pairs that carry the cell-level supply plan between zones (`supply_plan.cross_cell_pairs`)."""
    active = np.flatnonzero(problem.v_active)
    vi, pi = cross_cell_pairs(
        EARTH_RADIUS_KM * _unit_vectors(problem.v_lat[active], problem.v_lon[active]),
        EARTH_RADIUS_KM * _unit_vectors(problem.p_lat, problem.p_lon), problem.p_headcount,
    )
    vi = active[vi]
    ok = problem.feasible(vi, pi)
    return vi[ok], pi[ok]


def _flow_network(problem: AssignmentProblem, pair_v: np.ndarray, pair_p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arcs source → volunteer → post → sink as (tails, heads, capacities, volunteer→post arc offset)."""
    nv, npost = len(problem.volunteers), len(problem.posts)
    source, sink = nv + npost, nv + npost + 1
    tails = np.concatenate([np.full(nv, source), pair_v, nv + np.arange(npost)])
    heads = np.concatenate([np.arange(nv), nv + pair_p, np.full(npost, sink)])
    caps = np.concatenate([np.ones(nv + len(pair_v), np.int64), problem.p_headcount])
    return tails.astype(np.int32), heads.astype(np.int32), caps, np.arange(nv, nv + len(pair_v))


@dataclass
class FillBound:
    """The best filling over the complete feasibility structure: its penalty, heads, and one assignment achieving it."""

    penalty: int  # cost units of the heads left empty, weighted by priority
    heads: int
    pair_v: np.ndarray
    pair_p: np.ndarray


def _penalty_units(problem: AssignmentProblem) -> np.ndarray:
    """Each post's cost of one empty head, in the flow solver's integer units."""
    return np.array([round(unfilled_penalty(int(p)) * COST_UNITS_PER_KM) for p in problem.p_priority], dtype=np.int64)


def _within_reach_pairs(problem: AssignmentProblem, posts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every feasible (volunteer, post) pair of the reach-limited `posts` (ball queries, then the exact test)."""
    active = np.flatnonzero(problem.v_active)
    if len(active) == 0 or len(posts) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    tree = cKDTree(_unit_vectors(problem.v_lat[active], problem.v_lon[active]))
    chord = 2 * np.sin(np.minimum(problem.p_reach_km[posts], math.pi * EARTH_RADIUS_KM) / (2 * EARTH_RADIUS_KM)) + 1e-9
    found = tree.query_ball_point(_unit_vectors(problem.p_lat[posts], problem.p_lon[posts]), chord)
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    vi = active[np.fromiter(chain.from_iterable(found), dtype=np.int64, count=int(counts.sum()))]
    pi = np.repeat(posts, counts)
    ok = problem.feasible(vi, pi)
    return vi[ok], pi[ok]


def fill_bound(problem: AssignmentProblem) -> FillBound:
    """The exact best filling (priority-weighted, hence also the most heads) over every feasible pair.

    Volunteers with the same qualification row (which requirement profiles they meet) are interchangeable for
    posts without a reach limit, so those posts are grouped by (profile, priority) and fed from volunteer classes;
    reach-limited posts get every feasible pair within reach. The network is small, yet it is the complete
    feasibility structure, so its optimum is the true bound, and its flow is an assignment that reaches it.
    """
    nv, npost = len(problem.volunteers), len(problem.posts)
    heads = problem.p_headcount
    limited = np.flatnonzero(np.isfinite(problem.p_reach_km) & (heads > 0))
    open_posts = np.flatnonzero(~np.isfinite(problem.p_reach_km) & (heads > 0))
    table = problem.qualification_table()
    group_key = problem.p_profile[open_posts] * 8 + np.clip(problem.p_priority[open_posts], 0, 7)
    group_keys, group_of = np.unique(group_key, return_inverse=True)
    group_profile = group_keys // 8
    used_profiles = np.unique(group_profile)
    rows = table[:, used_profiles] & problem.v_active[:, None]
    qualified = np.flatnonzero(rows.any(axis=1))
    packed = np.packbits(rows[qualified], axis=1)
    class_rows, class_of = np.unique(packed, axis=0, return_inverse=True)
    class_of = class_of.ravel()
    class_size = np.bincount(class_of, minlength=len(class_rows))
    class_meets = np.unpackbits(class_rows, axis=1, count=len(used_profiles)).astype(bool)
    meets = class_meets[:, np.searchsorted(used_profiles, group_profile)]  # classes × groups
    lv, lp = _within_reach_pairs(problem, limited)

    ng, nc = len(group_keys), len(class_rows)
    class0, group0, limited0 = nv, nv + nc, nv + nc + ng
    source, sink = limited0 + len(limited), limited0 + len(limited) + 1
    limited_node = np.full(npost, -1, np.int64)
    limited_node[limited] = limited0 + np.arange(len(limited))
    cg_c, cg_g = np.nonzero(meets)
    group_heads = np.bincount(group_of, weights=heads[open_posts], minlength=ng).astype(np.int64)
    group_penalty = np.zeros(ng, np.int64)
    penalties = _penalty_units(problem)
    group_penalty[group_of] = penalties[open_posts]
    parts = [  # (tails, heads, capacities, costs)
        (np.full(nv, source), np.arange(nv), problem.v_active.astype(np.int64), np.zeros(nv, np.int64)),
        (qualified, class0 + class_of, np.ones(len(qualified), np.int64), np.zeros(len(qualified), np.int64)),
        (class0 + cg_c, group0 + cg_g, class_size[cg_c], np.zeros(len(cg_c), np.int64)),
        (lv, limited_node[lp], np.ones(len(lv), np.int64), np.zeros(len(lv), np.int64)),
        (group0 + np.arange(ng), np.full(ng, sink), group_heads, np.zeros(ng, np.int64)),
        (limited_node[limited], np.full(len(limited), sink), heads[limited], np.zeros(len(limited), np.int64)),
        (np.full(ng, source), group0 + np.arange(ng), group_heads, group_penalty),
        (np.full(len(limited), source), limited_node[limited], heads[limited], penalties[limited]),
    ]
    tails, arc_heads, caps, costs = (np.concatenate([np.asarray(part[i], np.int64) for part in parts]) for i in range(4))
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), arc_heads.astype(np.int32), caps, costs)
    supplies = np.zeros(sink + 1, np.int64)
    supplies[source], supplies[sink] = problem.slot_count, -problem.slot_count
    flow.set_nodes_supplies(np.arange(len(supplies)), supplies)
    if flow.solve() != flow.OPTIMAL:
        raise RuntimeError("the fill bound's flow failed")
    flows = flow.flows(np.arange(len(tails)))
    offsets = np.cumsum([0] + [len(part[0]) for part in parts])
    on_class = flows[offsets[1]:offsets[2]] > 0
    class_flow = flows[offsets[2]:offsets[3]]
    limited_used = flows[offsets[3]:offsets[4]] > 0
    unfilled_flow = flows[offsets[6]:offsets[8]]
    # the witness: each class's used volunteers go, in turn, to the slots of the groups its flow reaches
    members = [qualified[on_class & (class_of == c)] for c in range(nc)]
    taken = np.zeros(nc, np.int64)
    slots = [np.repeat(open_posts[group_of == g], heads[open_posts[group_of == g]]) for g in range(ng)]
    filled = np.zeros(ng, np.int64)
    out_v, out_p = [lv[limited_used]], [lp[limited_used]]
    for c, g, f in zip(cg_c.tolist(), cg_g.tolist(), class_flow.tolist(), strict=True):
        if f:
            out_v.append(members[c][taken[c]:taken[c] + f])
            out_p.append(slots[g][filled[g]:filled[g] + f])
            taken[c] += f
            filled[g] += f
    penalty = int(np.dot(unfilled_flow, np.concatenate([group_penalty, penalties[limited]])))
    return FillBound(penalty=penalty, heads=problem.slot_count - int(unfilled_flow.sum()),
                     pair_v=np.concatenate(out_v), pair_p=np.concatenate(out_p))


def _cost_units(problem: AssignmentProblem, pair_v: np.ndarray, pair_p: np.ndarray) -> np.ndarray:
    """Pair costs as the flow solver sees them: integer metres."""
    return np.rint(problem.cost(pair_v, pair_p) * COST_UNITS_PER_KM).astype(np.int64)


def min_cost_fill(
    problem: AssignmentProblem, pair_v: np.ndarray, pair_p: np.ndarray, *, fill_all: bool, units: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Which candidate pairs the optimum uses, and its penalty: each filled head pays its pair cost, each empty one
    its priority penalty.

    When the graph can fill every head (`fill_all`), the penalty arcs are left out: the flow is then the cheapest
    way to fill them all, with a far smaller cost range for the solver to scale through.
    """
    nv, npost = len(problem.volunteers), len(problem.posts)
    tails, heads, caps, pair_arcs = _flow_network(problem, pair_v, pair_p)
    source, sink = nv + npost, nv + npost + 1
    costs = np.concatenate([
        np.zeros(nv, np.int64), _cost_units(problem, pair_v, pair_p) if units is None else units,
        np.zeros(npost, np.int64),
    ])
    penalties = _penalty_units(problem)
    if not fill_all:
        tails = np.concatenate([tails, np.full(npost, source, np.int32)])
        heads = np.concatenate([heads, (nv + np.arange(npost)).astype(np.int32)])
        caps = np.concatenate([caps, problem.p_headcount])
        costs = np.concatenate([costs, penalties])
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(nv + npost + 2, np.int64)
    supplies[source], supplies[sink] = problem.slot_count, -problem.slot_count
    flow.set_nodes_supplies(np.arange(len(supplies)), supplies)
    status = flow.solve()
    if status != flow.OPTIMAL:  # cannot happen: the bound's witness pairs or the penalty arcs make the flow feasible
        raise RuntimeError(f"min-cost flow failed: {status}")
    chosen = flow.flows(pair_arcs) > 0
    empty = problem.p_headcount - np.bincount(pair_p[chosen], minlength=npost)
    return chosen, int(np.dot(empty, penalties))


def solve(problem: AssignmentProblem, *, k: int = 12, price_rounds: int = 12) -> Plan:
    """Assign volunteers to posts: most heads filled by priority, then least travel, then stars and fairness.

    Fill is decided on the complete feasibility structure (`fill_bound`); the sparse graph always holds the bound's
    witness assignment, and the plan's penalty must equal the bound — a proof that no more heads (nor more important
    ones) can be filled, not a round count. Travel is then improved by pricing: every feasible pair outside the graph
    whose reduced cost (under the plan's potentials) is negative is added, and the flow solved again, until no such
    pair remains, or until the Lagrangian bound those reduced costs give proves the travel within `TRAVEL_TOLERANCE`
    of the optimum for the plan's heads per post (or `price_rounds` run out; `Plan.travel_gap` says which).
    """
    nposts = len(problem.posts)
    if problem.slot_count == 0:
        empty = np.empty(0, np.int64)
        return Plan(empty, empty, np.empty(0), problem.p_headcount.copy(), 0.0, 0, 0, 0, 0.0)
    bound = fill_bound(problem)
    pv, pp = _nearest_feasible_posts(problem, k)
    fv, fp = _nearest_feasible_volunteers(problem, np.arange(nposts), 2 * problem.p_headcount + 4)
    cv, cp = _supply_plan_pairs(problem)
    key = _distinct(np.concatenate([pv, fv, cv, bound.pair_v]) * nposts + np.concatenate([pp, fp, cp, bound.pair_p]))
    units = _cost_units(problem, key // nposts, key % nposts)
    fill_all = bound.heads == problem.slot_count
    rounds, travel_gap = 0, math.inf
    while True:
        rounds += 1
        pair_v, pair_p = key // nposts, key % nposts
        chosen, penalty = min_cost_fill(problem, pair_v, pair_p, fill_all=fill_all, units=units)
        if penalty != bound.penalty:  # cannot happen: the witness is in the graph
            raise RuntimeError(f"plan penalty {penalty} differs from the fill bound {bound.penalty}")
        if rounds > price_rounds:
            break
        priced = _negative_reduced_cost_pairs(problem, key, units, chosen)
        if priced is None:
            break
        travel_gap = priced.slack_km / max(units[chosen].sum() / COST_UNITS_PER_KM, 1e-9)
        if len(priced.keys) == 0 or travel_gap <= TRAVEL_TOLERANCE:
            break
        merged = np.concatenate([key, priced.keys])  # priced keys are new and distinct
        order = np.argsort(merged, kind="stable")
        key = merged[order]
        units = np.concatenate([units, _cost_units(problem, priced.keys // nposts, priced.keys % nposts)])[order]
    vi, pi = pair_v[chosen], pair_p[chosen]
    return Plan(
        volunteer_index=vi, post_index=pi, distance_km=problem.distance_km(vi, pi),
        unfilled=problem.p_headcount - np.bincount(pi, minlength=nposts),
        cost=float(problem.cost(vi, pi).sum()), edges=len(key), rounds=rounds, bound_heads=bound.heads,
        travel_gap=travel_gap,
    )


POTENTIAL_SWEEPS = 2_000  # Bellman-Ford sweeps at most before pricing gives up (a round without proof)
UNREACHED = 2**62  # a potential no path has reached (in cost units)
PRICE_BUCKETS = 16  # volunteers are bucketed by their potential so each ball query is tight
PRICED_PER_POST = 16  # negative pairs added per post and round at most (the most negative first)
TRAVEL_TOLERANCE = 0.0075  # pricing stops once the travel is proven within 0.75 % of the optimum
# Above this many (active volunteer, post) combinations, listing every pair within reach is too much (a province,
# 130,000 × 15,000: ~10 GB in the first round); pricing then asks, per volunteer, for its nearest posts in each price
# class instead (`_priced_per_volunteer`).
EXACT_PRICING_PAIRS = 100_000_000
PRICE_CLASSES = 32  # posts split by price, for the per-volunteer pricing
NEAREST_PER_CLASS = 4  # posts looked at first per volunteer and price class (widened ×4 while the bound is loose)
MOST_PER_CLASS = 64  # … up to this many; past it the class's bound is taken as it is (valid, looser)


@dataclass
class PricedPairs:
    """Pairs outside the graph with negative reduced cost, and the most their use could still save (km)."""

    keys: np.ndarray
    slack_km: float


def _potentials(
    problem: AssignmentProblem, key: np.ndarray, units: np.ndarray, chosen: np.ndarray, *, from_source: bool = False
) -> np.ndarray | None:
    """Shortest-path potentials (km) of the residual graph of the plan with its heads per post held fixed.

    Bellman-Ford from a virtual root (or, `from_source`, from the flow's source: a post's price is then the cost of
    the cheapest chain that brings it one more free volunteer), in integer cost units (as the flow solver saw them,
    so it converges exactly); each sweep relaxes the arcs into posts, then into volunteers, then through the source,
    in turn, so one sweep carries a path several hops along an alternating chain. None: not converged in time, or
    (`from_source`) some active volunteer or post with heads that no chain reaches.
    """
    nv, npost = len(problem.volunteers), len(problem.posts)
    pair_v, pair_p = key // npost, key % npost
    source, sink = nv + npost, nv + npost + 1
    used = np.zeros(nv, dtype=bool)
    used[pair_v[chosen]] = True
    filled = np.flatnonzero(np.bincount(pair_p[chosen], minlength=npost) > 0)
    free = np.flatnonzero(problem.v_active & ~used)
    taken = np.flatnonzero(used)
    groups = [  # (tails, heads, costs)
        (np.concatenate([pair_v[~chosen], np.full(len(filled), sink)]), nv + np.concatenate([pair_p[~chosen], filled]),
         np.concatenate([units[~chosen], np.zeros(len(filled), np.int64)])),
        (nv + pair_p[chosen], pair_v[chosen], -units[chosen]),
        (taken, np.full(len(taken), source), np.zeros(len(taken), np.int64)),
        (np.full(len(free), source), free, np.zeros(len(free), np.int64)),
    ]
    relaxations = [_relaxation(tails, heads, costs) for tails, heads, costs in groups]
    d = np.zeros(sink + 1, np.int64)
    if from_source:
        d[:] = UNREACHED
        d[source] = 0
    for _ in range(POTENTIAL_SWEEPS):
        before = d.copy()
        for tails, costs, targets, starts in relaxations:
            d[targets] = np.minimum(d[targets], np.minimum.reduceat(d[tails] + costs, starts))
        if np.array_equal(before, d):
            break
    else:
        return None
    if from_source:
        needed = np.concatenate([problem.v_active, problem.p_headcount > 0])
        if (d[:nv + npost][needed] >= UNREACHED // 2).any():
            return None
        d[sink] = d[nv + filled].max() if len(filled) else 0  # the sink's arcs go out only, to the filled posts
    return d / COST_UNITS_PER_KM


def _relaxation(tails: np.ndarray, heads: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arcs sorted by head for one Bellman-Ford step: (tails, costs, distinct heads, where each head's arcs start)."""
    if len(heads) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, empty
    order = np.argsort(heads, kind="stable")
    ordered = heads[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return tails[order], costs[order], ordered[starts], starts


def _negative_reduced_cost_pairs(problem: AssignmentProblem, key: np.ndarray, units: np.ndarray, chosen: np.ndarray) -> PricedPairs | None:
    """Feasible pairs outside the graph (`key`, sorted) with negative reduced cost (None: no potentials in time).

    The slack is Σ over volunteers of their most negative reduced cost: lowering each volunteer's potential by it
    makes the potentials dual-feasible on the complete graph, so the plan's travel minus the slack bounds the optimum.
    """
    nv, npost = len(problem.volunteers), len(problem.posts)
    at_scale = int(problem.v_active.sum()) * int((problem.p_headcount > 0).sum()) > EXACT_PRICING_PAIRS
    d = _potentials(problem, key, units, chosen, from_source=at_scale)
    if d is None and at_scale:
        d = _potentials(problem, key, units, chosen)
    if d is None:
        return None
    weight = d[:nv] + STAR_WEIGHT_KM * (5 - problem.v_star) + LOAD_WEIGHT_KM * problem.v_load  # reduced = dist + w_v − d_p
    price = d[nv:nv + npost]
    active = np.flatnonzero(problem.v_active)
    if len(active) == 0:
        return PricedPairs(np.empty(0, np.int64), 0.0)
    post_points = _unit_vectors(problem.p_lat, problem.p_lon)
    if at_scale:
        return _priced_per_volunteer(problem, key, weight, price, active, post_points)
    active = active[np.argsort(weight[active], kind="stable")]
    out_v, out_p = [], []
    for bucket in np.array_split(active, min(PRICE_BUCKETS, len(active))):
        reach = price - weight[bucket[0]] - 1e-6
        posts = np.flatnonzero((reach > 0) & (problem.p_headcount > 0))
        if len(posts) == 0:
            continue
        tree = cKDTree(_unit_vectors(problem.v_lat[bucket], problem.v_lon[bucket]))
        chord = 2 * np.sin(np.minimum(reach[posts], math.pi * EARTH_RADIUS_KM) / (2 * EARTH_RADIUS_KM))
        found = tree.query_ball_point(post_points[posts], chord)
        counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
        out_v.append(bucket[np.fromiter(chain.from_iterable(found), dtype=np.int64, count=int(counts.sum()))])
        out_p.append(np.repeat(posts, counts))
    if not out_v:
        return PricedPairs(np.empty(0, np.int64), 0.0)
    vi, pi = np.concatenate(out_v), np.concatenate(out_p)
    vi, pi, reduced, keys = _new_negative_pairs(problem, key, vi, pi, problem.distance_km(vi, pi) + weight[vi] - price[pi])
    worst = np.zeros(nv)
    np.minimum.at(worst, vi, reduced)
    return PricedPairs(_most_negative_per_post(keys, pi, reduced), float(-worst.sum()))


def _new_negative_pairs(
    problem: AssignmentProblem, key: np.ndarray, vi: np.ndarray, pi: np.ndarray, reduced: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of the pairs given with their reduced costs, the feasible ones outside the graph with a negative one."""
    keep = reduced < -2e-3  # beyond the flow solver's rounding to metres
    vi, pi, reduced = vi[keep], pi[keep], reduced[keep]
    keys = vi * len(problem.posts) + pi
    at = np.minimum(np.searchsorted(key, keys), len(key) - 1)
    fresh = key[at] != keys
    vi, pi, reduced, keys = vi[fresh], pi[fresh], reduced[fresh], keys[fresh]
    ok = problem.feasible(vi, pi)
    return vi[ok], pi[ok], reduced[ok], keys[ok]


def _most_negative_per_post(keys: np.ndarray, pi: np.ndarray, reduced: np.ndarray) -> np.ndarray:
    """The keys of at most `PRICED_PER_POST` pairs per post, the most negative first."""
    order = np.lexsort((reduced, pi))
    rank = np.arange(len(order)) - np.searchsorted(pi[order], pi[order])
    return keys[order[rank < PRICED_PER_POST]]


def _priced_per_volunteer(
    problem: AssignmentProblem, key: np.ndarray, weight: np.ndarray, price: np.ndarray, active: np.ndarray,
    post_points: np.ndarray,
) -> PricedPairs:
    """Pricing without listing every pair within reach: per volunteer and price class, its nearest posts.

    Posts are split into `PRICE_CLASSES` by price. A volunteer's reduced cost to any post of a class is at least its
    distance to the class's k-th nearest post, plus its weight, less the class's highest price; the k nearest posts
    are priced exactly. The least of these per volunteer bounds its most negative reduced cost from below
    (infeasible pairs count too, so the bound is valid, if looser than listing every pair); only volunteers whose
    nearest post of all, at the highest price of a class, could be negative are asked about that class. A first pass
    looks at `NEAREST_PER_CLASS` posts; only when it finds fewer new negative pairs than there are posts (so the
    loose bound, not missing pairs, is what keeps the plan from its proof) is k widened, ×4 up to `MOST_PER_CLASS`,
    for the volunteers whose bound the posts not looked at still lower.
    """
    with_heads = np.flatnonzero(problem.p_headcount > 0)
    points = _unit_vectors(problem.v_lat[active], problem.v_lon[active])
    nearest_km = _chord_km(cKDTree(post_points[with_heads]).query(points, k=1)[0])
    by_price = with_heads[np.argsort(-price[with_heads], kind="stable")]
    classes = [(posts, cKDTree(post_points[posts])) for posts in np.array_split(by_price, min(PRICE_CLASSES, len(by_price)))]
    found = _price_classes(problem, key, weight, price, active, points, nearest_km, classes, widen=False)
    if len(found[0]) < len(with_heads):
        found = _price_classes(problem, key, weight, price, active, points, nearest_km, classes, widen=True)
    keys, pi, reduced, lowest = found
    return PricedPairs(_most_negative_per_post(keys, pi, reduced), float(-lowest.sum()))


def _price_classes(
    problem: AssignmentProblem, key: np.ndarray, weight: np.ndarray, price: np.ndarray, active: np.ndarray,
    points: np.ndarray, nearest_km: np.ndarray, classes: list[tuple[np.ndarray, cKDTree]], *, widen: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass of `_priced_per_volunteer`: new negative pairs (keys, posts, reduced costs, distinct) and the lower
    bound of each active volunteer's most negative reduced cost."""
    w = weight[active]
    lowest = np.zeros(len(active))
    out_k, out_p, out_r = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0)]
    for posts, tree in classes:
        top = float(price[posts].max())
        rows = np.flatnonzero(nearest_km + w - top < -2e-3)
        if len(rows) == 0:
            break  # classes come by falling price: no later class can be negative either
        k = min(NEAREST_PER_CLASS, len(posts))
        while len(rows):
            chord, idx = tree.query(points[rows], k=k)
            chord, idx = chord.reshape(len(rows), k), idx.reshape(len(rows), k)
            vi, pi = np.repeat(active[rows], k), posts[idx.ravel()]
            reduced = problem.distance_km(vi, pi) + weight[vi] - price[pi]
            exact = np.minimum(np.where(problem.feasible(vi, pi), reduced, np.inf).reshape(len(rows), k).min(axis=1), 0.0)
            beyond = _chord_km(chord[:, -1]) + w[rows] - top if k < len(posts) else np.full(len(rows), np.inf)
            settled = (beyond >= exact - 2e-3) | (k >= (MOST_PER_CLASS if widen else NEAREST_PER_CLASS))
            lowest[rows[settled]] = np.minimum(lowest[rows[settled]], np.minimum(exact, beyond)[settled])
            vi, pi, reduced, keys = _new_negative_pairs(problem, key, vi, pi, reduced)
            out_k.append(keys)
            out_p.append(pi)
            out_r.append(reduced)
            rows, k = rows[~settled], min(4 * k, len(posts))
    keys, first = np.unique(np.concatenate(out_k), return_index=True)  # a widened query finds the nearer posts again
    return keys, np.concatenate(out_p)[first], np.concatenate(out_r)[first], lowest


def _chord_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle km of chords between unit vectors."""
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(np.asarray(chord) / 2, 1.0))
