"""Synthetic security operations (a summit) for demos, benches and tests: volunteers and posts, seeded and pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from shouwang_shared.contracts.registry import AvailabilityWindow, Certificate, VolunteerState

CENTER = (30.2460, 120.2100)  # the summit venue (Hangzhou Olympic centre area)
SKILLS = ("first_aid", "fire_safety", "sign_language", "english")
TEAMS = ("traffic_civility", "voluntary_patrol", "psychological_counselling", "mediation")
PLACE_KINDS = ("路口", "地铁站口", "公交站", "广场", "酒店门口", "商场入口", "社区卡口", "桥头")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


@dataclass
class Summit:
    """A generated operation: the volunteer states the registry would publish and the posts staff would load."""

    volunteer_states: list[VolunteerState]
    posts: list[dict]
    zones: int
    shift_start: datetime
    shift_end: datetime

    @property
    def headcount(self) -> int:
        """Heads all posts ask for."""
        return sum(p["headcount"] for p in self.posts)


def county_units(root: str, *, towns: int = 10, branches: int = 10, stations: int = 208) -> list[tuple[str, str]]:
    """The brief's "1 + x" county under `root`: (unit id, org path) of every station (spread over the towns) and
    industry branch — the units volunteers belong to."""
    units = [(f"station-{j + 1:03d}", f"{root}/town-{j % towns + 1:02d}/station-{j + 1:03d}") for j in range(stations)]
    return units + [(f"branch-{b + 1:02d}", f"{root}/branch-{b + 1:02d}") for b in range(branches)]


def _split(total: int, parts: int, rng: np.random.Generator, low: int, high: int) -> list[int]:
    """`parts` integers in [low, high] summing to `total` (total must fit)."""
    sizes = np.full(parts, low, dtype=int)
    left = total - low * parts
    while left > 0:
        room = np.flatnonzero(sizes < high)
        take = rng.choice(room, size=min(left, len(room)), replace=False)
        sizes[take] += 1
        left -= len(take)
    return sizes.tolist()


def generate_summit(
    *,
    volunteers: int = 13_000,
    posts: int = 1_500,
    zones: int = 30,
    headcount: int = 10_800,
    seed: int = 2016,
    org_path: str = "/county",
    start: datetime | None = None,
    radius_km: float = 25.0,
) -> Summit:
    """A feasible summit: ≈`volunteers` eligible volunteers of the county under `org_path` (10 towns with 208 stations,
    10 industry branches) around ≈`zones` zones of `posts` posts needing `headcount` heads."""
    rng = np.random.default_rng(seed)
    start = start or (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    shift_start, shift_end = start, start + timedelta(hours=10)  # 08:00–18:00 Beijing time
    km_lat, km_lon = 1 / 111.0, 1 / (111.0 * np.cos(np.radians(CENTER[0])))
    zone_xy = rng.normal(0, radius_km / 3, size=(zones, 2))
    zone_of_post = rng.integers(0, zones, size=posts)
    post_xy = zone_xy[zone_of_post] + rng.normal(0, 1.5, size=(posts, 2))
    sizes = _split(headcount, posts, rng, 2, 24)
    post_rows = []
    for i in range(posts):
        kind = rng.random()
        post = {
            "name": f"{zone_of_post[i] + 1}号片区{PLACE_KINDS[i % len(PLACE_KINDS)]}{i + 1}",
            "lat": float(CENTER[0] + post_xy[i, 1] * km_lat),
            "lon": float(CENTER[1] + post_xy[i, 0] * km_lon),
            "zone": f"片区{zone_of_post[i] + 1}",
            "org_path": org_path,
            "shift_start": shift_start.isoformat(),
            "shift_end": shift_end.isoformat(),
            "headcount": sizes[i],
            "required_skills": [],
            "required_teams": [],
            "min_star": 1,
            "core_only": False,
            "priority": int(rng.integers(1, 6)),
        }
        if kind < 0.08:
            post["required_skills"] = [SKILLS[i % 2]]
        elif kind < 0.14:
            post["required_teams"] = [TEAMS[i % 2]]
        elif kind < 0.17:
            post["min_star"] = 3
        elif kind < 0.18:
            post["core_only"] = True
            post["headcount"] = min(post["headcount"], 4)
        post_rows.append(post)
    surplus = headcount - sum(p["headcount"] for p in post_rows)
    for post in post_rows:  # put the heads cut from core-only posts back on plain posts
        if surplus <= 0:
            break
        if not (post["core_only"] or post["required_skills"] or post["required_teams"]):
            add = min(surplus, 30 - post["headcount"])
            post["headcount"] += add
            surplus -= add

    now = datetime.now(UTC)
    near_zone = rng.random(volunteers) < 0.7
    home_zone = rng.integers(0, zones, size=volunteers)
    vol_xy = np.where(
        near_zone[:, None],
        zone_xy[home_zone] + rng.normal(0, 3.0, size=(volunteers, 2)),
        rng.normal(0, radius_km / 2, size=(volunteers, 2)),
    )
    units = county_units(org_path)
    home_unit = np.random.default_rng(seed + 1).integers(0, len(units), size=volunteers)  # own stream: the rest stays as it was
    states = []
    for i in range(volunteers):
        r = rng.random(6)
        skills = [SKILLS[j] for j in range(len(SKILLS)) if r[0] < 0.25 and (i + j) % 2 == 0]
        teams = [TEAMS[j] for j in range(len(TEAMS)) if r[1] < 0.2 and (i + j) % 3 == 0]
        certificates = [Certificate(code="first_aid", expires_on=(now + timedelta(days=365)).date())] if "first_aid" in skills else []
        states.append(VolunteerState(
            volunteer_id=str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | i)),
            version=1,
            display_name=f"{SURNAMES[i % len(SURNAMES)]}**",
            status="active",
            org_unit_id=units[home_unit[i]][0],
            org_path=units[home_unit[i]][1],
            core=bool(r[2] < 0.12),
            recruitment_mode="reserve" if r[3] < 0.15 else "long_term",
            teams=teams,
            skills=skills,
            certificates=certificates,
            lat=float(CENTER[0] + vol_xy[i, 1] * km_lat),
            lon=float(CENTER[1] + vol_xy[i, 0] * km_lon),
            availability=[] if r[4] < 0.8 else [AvailabilityWindow(weekday=d, start="07:00", end="20:00") for d in range(7)],
            training_compliant=True,
            specialised_eligible=True,
            star=int(1 + min(4, rng.poisson(1.2))),
            updated_at=now,
        ))
    return Summit(volunteer_states=states, posts=post_rows, zones=zones, shift_start=shift_start, shift_end=shift_end)


def summit_problem(summit: Summit):
    """The planner's problem for a generated summit (posts get ids `post-<n>`)."""
    from dispatch.planning_inputs import post_for_planner, volunteer_from_state
    from dispatch.solver import AssignmentProblem

    volunteers = [volunteer_from_state(state.model_dump()) for state in summit.volunteer_states]
    posts = [
        post_for_planner({
            **row, "id": f"post-{n}", "required_certificates": [],
            "shift_start": datetime.fromisoformat(row["shift_start"]), "shift_end": datetime.fromisoformat(row["shift_end"]),
        })
        for n, row in enumerate(summit.posts)
    ]
    return AssignmentProblem(volunteers, posts)
