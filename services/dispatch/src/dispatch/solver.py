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
from zoneinfo import ZoneInfo

import numpy as np
from ortools.graph.python import max_flow, min_cost_flow
from scipy.spatial import cKDTree

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
RESERVE_BONUS_KM = 2.0  # backfill prefers reserve volunteers this much


@dataclass(frozen=True)
class Volunteer:
    """What the planner knows of a volunteer (from the local read model)."""

    id: str
    lat: float | None
    lon: float | None
    star: int = 1
    core: bool = False
    active: bool = True  # status active and training compliant
    specialised_eligible: bool = True
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
        if nv * len(profiles) <= PROFILE_TABLE_LIMIT and len(posts):
            representative = np.zeros(len(profiles), dtype=np.int64)
            representative[self.p_profile[::-1]] = np.arange(len(posts))[::-1]
            everyone = np.repeat(np.arange(nv), len(profiles))
            self._profile_table = self._check(everyone, np.tile(representative, nv)).reshape(nv, len(profiles))

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

    def _check(self, vi: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """Every hard constraint, evaluated pair by pair."""
        ok = self.v_active[vi] & (self.v_star[vi] >= self.p_min_star[pi]) & (self.v_core[vi] | ~self.p_core_only[pi])
        ok &= np.all((self.v_skills[vi] & self.p_skills[pi]) == self.p_skills[pi], axis=1)
        team_ok = np.any((self.v_teams[vi] & self.p_teams[pi]) != 0, axis=1) & self.v_specialised[vi]
        ok &= ~self.p_needs_team[pi] | team_ok
        for col in range(self.p_cert_required.shape[1]):
            ok &= ~self.p_cert_required[pi, col] | (self.v_cert_expiry[vi, col] >= self.p_end_day[pi])
        ok &= np.all((self.v_available[vi] & self.p_need[pi]) == self.p_need[pi], axis=1)
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


def _flow_network(problem: AssignmentProblem, pair_v: np.ndarray, pair_p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arcs source → volunteer → post → sink as (tails, heads, capacities, volunteer→post arc offset)."""
    nv, npost = len(problem.volunteers), len(problem.posts)
    source, sink = nv + npost, nv + npost + 1
    tails = np.concatenate([np.full(nv, source), pair_v, nv + np.arange(npost)])
    heads = np.concatenate([np.arange(nv), nv + pair_p, np.full(npost, sink)])
    caps = np.concatenate([np.ones(nv + len(pair_v), np.int64), problem.p_headcount])
    return tails.astype(np.int32), heads.astype(np.int32), caps, np.arange(nv, nv + len(pair_v))


def _max_fill(problem: AssignmentProblem, pair_v: np.ndarray, pair_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A maximum filling over the candidate pairs: (heads filled per post, volunteer used?)."""
    nv, npost = len(problem.volunteers), len(problem.posts)
    tails, heads, caps, _ = _flow_network(problem, pair_v, pair_p)
    flow = max_flow.SimpleMaxFlow()
    flow.add_arcs_with_capacity(tails, heads, caps)
    flow.solve(nv + npost, nv + npost + 1)
    flows = flow.flows(np.arange(len(tails)))
    return flows[nv + len(pair_v):], flows[:nv] > 0


def _min_cost_fill(problem: AssignmentProblem, pair_v: np.ndarray, pair_p: np.ndarray, *, fillable: int) -> np.ndarray:
    """Which candidate pairs the optimum uses: each filled head pays its pair cost, each unfilled one its priority penalty.

    When the graph can fill every head (`fillable` = all), the penalty arcs are left out: the flow is then the
    cheapest way to fill them all, with a far smaller cost range for the solver to scale through.
    """
    nv, npost = len(problem.volunteers), len(problem.posts)
    tails, heads, caps, pair_arcs = _flow_network(problem, pair_v, pair_p)
    source, sink = nv + npost, nv + npost + 1
    costs = np.concatenate([
        np.zeros(nv, np.int64), np.rint(problem.cost(pair_v, pair_p) * COST_UNITS_PER_KM).astype(np.int64),
        np.zeros(npost, np.int64),
    ])
    if fillable < problem.slot_count:
        penalties = np.array([round(unfilled_penalty(int(p)) * COST_UNITS_PER_KM) for p in problem.p_priority], dtype=np.int64)
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
    if status != flow.OPTIMAL:  # cannot happen: the max-flow check or the penalty arcs make the flow feasible
        raise RuntimeError(f"min-cost flow failed: {status}")
    return flow.flows(pair_arcs) > 0


def solve(problem: AssignmentProblem, *, k: int = 12, max_rounds: int = 6) -> Plan:
    """Assign volunteers to posts: most heads filled by priority, then least travel, then stars and fairness."""
    nposts = len(problem.posts)
    if problem.slot_count == 0:
        empty = np.empty(0, np.int64)
        return Plan(empty, empty, np.empty(0), problem.p_headcount.copy(), 0.0, 0, 0)
    pv, pp = _nearest_feasible_posts(problem, k)
    fv, fp = _nearest_feasible_volunteers(problem, np.arange(nposts), 2 * problem.p_headcount + 4)
    pair_v, pair_p = np.concatenate([pv, fv]), np.concatenate([pp, fp])
    rounds = 0
    while True:
        rounds += 1
        key = _distinct(pair_v * nposts + pair_p)
        pair_v, pair_p = key // nposts, key % nposts
        filled, used = _max_fill(problem, pair_v, pair_p)
        short = np.flatnonzero(filled < problem.p_headcount)
        if len(short) == 0 or rounds >= max_rounds:
            break
        # widen: the nearest volunteers still free, or failing that every feasible volunteer of the short posts
        wv, wp = _nearest_feasible_volunteers(problem, short, 2 * (problem.p_headcount[short] - filled[short]) + 4, among=~used)
        merged = _distinct(np.concatenate([key, wv * nposts + wp]))
        if len(merged) == len(key):
            wv, wp = _nearest_feasible_volunteers(problem, short, np.full(len(short), len(problem.volunteers)))
            merged = _distinct(np.concatenate([key, wv * nposts + wp]))
            if len(merged) == len(key):
                break
        pair_v, pair_p = merged // nposts, merged % nposts
    chosen = _min_cost_fill(problem, pair_v, pair_p, fillable=int(filled.sum()))
    vi, pi = pair_v[chosen], pair_p[chosen]
    return Plan(
        volunteer_index=vi, post_index=pi, distance_km=problem.distance_km(vi, pi),
        unfilled=problem.p_headcount - np.bincount(pi, minlength=nposts),
        cost=float(problem.cost(vi, pi).sum()), edges=len(pair_v), rounds=rounds,
    )


def eligible_counts(problem: AssignmentProblem, post_ids: Sequence[int]) -> dict[int, int]:
    """How many volunteers could take each of `post_ids` at all (for a shortfall report)."""
    everyone = np.arange(len(problem.volunteers))
    return {int(p): int(problem.feasible(everyone, np.full(len(everyone), p)).sum()) for p in post_ids}


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
