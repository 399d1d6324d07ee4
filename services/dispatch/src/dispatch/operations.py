"""Operation use cases: create, load posts, activate, plan (on the activation event), close. Each owns its transaction."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.contracts.dispatch import AssignmentAnswered, AssignmentOffered, OperationActivated, OperationClosed, Place
from shouwang_shared.contracts.intel import EscalationRaised
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Cause, EventMeta, fast_event_ids
from shouwang_shared.errors import Conflict, NotFound, Unprocessable
from shouwang_shared.inbox import PoisonMessage
from shouwang_shared.memory import retain_freed_memory
from shouwang_shared.outbox import OutboxRow, enqueue, enqueue_many, outbox_row

from dispatch import metrics
from dispatch.access import ensure_staff_covers
from dispatch.choices import nearest_available, shortfall_reasons
from dispatch.planning_inputs import post_for_planner
from dispatch.province_plan import may_be_by_parts
from dispatch.province_plan import plan as plan_by_scale
from dispatch.read_model import known_codes, planner_volunteers
from dispatch.schemas import OperationCreate, OperationPublic, PostBase, PostsLoadedPublic
from dispatch.solver import AssignmentProblem, Plan

log = logging.getLogger(__name__)
Sessions = async_sessionmaker[AsyncSession]

POST_COLUMNS = (
    "id", "operation_id", "name", "zone", "lat", "lon", "org_unit_id", "org_path", "shift_start", "shift_end",
    "headcount", "required_skills", "required_teams", "required_certificates", "min_star", "core_only", "priority",
    "difficulty", "risk", "geofence_m", "checkin_code", "max_distance_km",
)
ASSIGNMENT_COLUMNS = (
    "id", "operation_id", "post_id", "volunteer_id", "status", "wave", "distance_km", "shift_start", "shift_end",
    "offered_at", "respond_by",
)
EMERGENCY_RESPOND_S = 10 * 60


async def _operation_row(conn, operation_id: str, *, lock: bool = False) -> Any:
    try:
        uuid.UUID(str(operation_id))
    except ValueError:
        return None
    return await conn.fetchrow(
        "SELECT * FROM operations WHERE id = $1::uuid" + (" FOR UPDATE" if lock else ""), str(operation_id)
    )


async def operation_or_404(conn, operation_id: str, *, lock: bool = False, staff: Principal | None = None) -> Any:
    """The operation row (locked with `lock`); 404 naming `operation_id` when there is none, 403 when the `staff`
    member's scope does not cover it."""
    row = await _operation_row(conn, operation_id, lock=lock)
    if row is None:
        raise NotFound("行动不存在 (no such operation)", field="operation_id")
    if staff is not None:
        ensure_staff_covers(staff, row["org_path"])
    return row


async def _public(conn, row) -> OperationPublic:
    totals = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(headcount), 0) AS heads FROM posts WHERE operation_id = $1", row["id"]
    )
    return _public_of(row, totals)


def _public_of(row, totals) -> OperationPublic:
    """An operation row and its post totals (`n`, `heads`) as the API shows them."""
    summary = row["plan_summary"]
    return OperationPublic(
        id=str(row["id"]), kind=row["kind"], name=row["name"], description=row["description"], status=row["status"],
        org_unit_id=row["org_unit_id"], org_path=row["org_path"], respond_within_minutes=row["respond_within_s"] // 60,
        escalation_id=row["escalation_id"], created_by=row["created_by"], created_at=row["created_at"],
        activated_at=row["activated_at"], planned_at=row["planned_at"], closed_at=row["closed_at"],
        plan_summary=orjson.loads(summary) if isinstance(summary, (str, bytes)) else summary,
        post_count=totals["n"], headcount=int(totals["heads"]),
    )


async def _check_codes(conn, posts: list[PostBase], now: datetime) -> None:
    """422 naming the field for a post whose window has passed or that asks for codes nobody holds."""
    skills, teams, certificates = await known_codes(conn)
    for i, post in enumerate(posts):
        if post.shift_end <= now:
            raise Unprocessable("班次已结束 (the shift window is already over)", field=f"posts[{i}].shift_end")
        for field, wanted, known in (
            ("required_skills", post.required_skills, skills),
            ("required_teams", post.required_teams, teams),
            ("required_certificates", post.required_certificates, certificates),
        ):
            unknown = sorted(set(wanted) - known)
            if unknown:
                raise Unprocessable(f"未知的代码 (unknown code): {', '.join(unknown)}", field=f"posts[{i}].{field}")


async def _insert_posts(conn, operation_id: uuid.UUID, org_path: str, posts: list[PostBase]) -> list[str]:
    records = []
    for post in posts:
        records.append((
            uuid.uuid4(), operation_id, post.name, post.zone, post.lat, post.lon, post.org_unit_id,
            post.org_path or org_path, post.shift_start, post.shift_end, post.headcount, post.required_skills,
            post.required_teams, post.required_certificates, post.min_star, post.core_only, post.priority,
            post.difficulty, post.risk, post.geofence_m, secrets.token_urlsafe(12), post.max_distance_km,
        ))
    if records:
        await conn.copy_records_to_table("posts", records=records, columns=list(POST_COLUMNS))
    return [str(r[0]) for r in records]


def _check_post_scope(principal: Principal, org_path: str, posts: list[PostBase]) -> None:
    for i, post in enumerate(posts):
        path = post.org_path or org_path
        if path != org_path and not path.startswith(org_path.rstrip("/") + "/"):
            raise Unprocessable("岗位必须属于行动所在组织 (a post must lie inside the operation's org unit)", field=f"posts[{i}].org_path")
        ensure_staff_covers(principal, path, field=f"posts[{i}].org_path")


async def create_operation(*, sessions: Sessions, principal: Principal, body: OperationCreate) -> OperationPublic:
    """Create a draft operation with its posts."""
    ensure_staff_covers(principal, body.org_path)
    _check_post_scope(principal, body.org_path, body.posts)
    operation_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        await _check_codes(conn, body.posts, datetime.now(UTC))
        await conn.execute(
            "INSERT INTO operations (id, kind, name, description, org_unit_id, org_path, respond_within_s, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            operation_id, body.kind, body.name, body.description, body.org_unit_id, body.org_path,
            body.respond_within_minutes * 60, principal.sub,
        )
        await _insert_posts(conn, operation_id, body.org_path, body.posts)
        return await _public(conn, await _operation_row(conn, str(operation_id)))


async def get_operation(*, sessions: Sessions, principal: Principal, operation_id: str) -> OperationPublic:
    """An operation, for staff whose scope covers it."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await operation_or_404(conn, operation_id, staff=principal)
        return await _public(conn, row)


# $1 status or NULL, $2 the caller's scope path or NULL (operators: everywhere), $3 that path's subtree, $4 how many.
OPERATIONS_IN_SCOPE = (
    "SELECT o.*, coalesce(t.n, 0) AS n, coalesce(t.heads, 0) AS heads FROM operations o"
    " LEFT JOIN (SELECT operation_id, count(*) AS n, sum(headcount) AS heads FROM posts GROUP BY operation_id) t"
    " ON t.operation_id = o.id"
    " WHERE ($1::text IS NULL OR o.status = $1) AND ($2::text IS NULL OR o.org_path = $2 OR o.org_path LIKE $3)"
    " ORDER BY o.created_at DESC LIMIT $4"
)


async def list_operations(*, sessions: Sessions, principal: Principal, status: str | None, limit: int) -> list[OperationPublic]:
    """The operations inside the caller's org scope, newest first (dispatch staff only)."""
    scope = None if principal.role == Role.OPERATOR else principal.scope_path
    ensure_staff_covers(principal, scope)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        subtree = f"{scope.rstrip('/')}/%" if scope else None
        rows = await conn.fetch(OPERATIONS_IN_SCOPE, status, scope, subtree, limit)
    return [_public_of(row, row) for row in rows]


async def load_posts(*, sessions: Sessions, principal: Principal, operation_id: str, posts: list[PostBase]) -> PostsLoadedPublic:
    """Add posts in bulk to a draft operation."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await operation_or_404(conn, operation_id, lock=True, staff=principal)
        if row["status"] != "draft":
            raise Conflict("只能向草稿行动添加岗位 (posts can only be added to a draft operation)", field="status")
        _check_post_scope(principal, row["org_path"], posts)
        await _check_codes(conn, posts, datetime.now(UTC))
        ids = await _insert_posts(conn, row["id"], row["org_path"], posts)
    return PostsLoadedPublic(operation_id=str(row["id"]), loaded=len(ids), post_ids=ids)


async def _activate(session: AsyncSession, row, *, by: str, caused_by: Cause | None = None) -> None:
    conn = await raw_connection(session)
    await conn.execute(
        "UPDATE operations SET status = 'activated', activated_at = now(), activated_by = $2 WHERE id = $1", row["id"], by
    )
    activated = OperationActivated(
        operation_id=str(row["id"]), kind=row["kind"], name=row["name"], org_unit_id=row["org_unit_id"],
        org_path=row["org_path"], activated_by=by, escalation_id=row["escalation_id"],
        headcount=await conn.fetchval("SELECT coalesce(sum(headcount), 0) FROM posts WHERE operation_id = $1", row["id"]),
    )
    await enqueue(session, activated, subject=str(row["id"]), caused_by=caused_by)


async def activate_operation(*, sessions: Sessions, principal: Principal, operation_id: str) -> OperationPublic:
    """Activate a draft operation: the planner assigns everyone when the activation event comes back."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await operation_or_404(conn, operation_id, lock=True, staff=principal)
        if row["status"] != "draft":
            raise Conflict(f"行动已是 {row['status']} 状态 (operation is already {row['status']})", field="status")
        posts = await conn.fetchval("SELECT count(*) FROM posts WHERE operation_id = $1", row["id"])
        if not posts:
            raise Unprocessable("行动没有岗位 (the operation has no posts)", field="posts")
        await _activate(session, row, by=principal.sub)
        return await _public(conn, await _operation_row(conn, operation_id))


async def close_operation(*, sessions: Sessions, principal: Principal, operation_id: str) -> OperationPublic:
    """Close an operation: open offers are cancelled."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await operation_or_404(conn, operation_id, lock=True, staff=principal)
        if row["status"] == "closed":
            raise Conflict("行动已结束 (operation already closed)", field="status")
        now = datetime.now(UTC)
        cancelled = await conn.fetch(
            "UPDATE assignments SET status = 'cancelled', answered_at = $2 WHERE operation_id = $1 AND status = 'offered'"
            " RETURNING id, post_id, volunteer_id",
            row["id"], now,
        )
        await conn.execute(
            "UPDATE operations SET status = 'closed', closed_at = $2, closed_by = $3 WHERE id = $1", row["id"], now, principal.sub
        )
        events = [outbox_row(OperationClosed(operation_id=str(row["id"]), closed_by=principal.sub), subject=str(row["id"]))]
        for a in cancelled:
            cancelled_offer = AssignmentAnswered(
                assignment_id=str(a["id"]), operation_id=str(row["id"]), post_id=str(a["post_id"]),
                volunteer_id=a["volunteer_id"], answer="cancelled", reason="行动结束", at=now,
            )
            events.append(outbox_row(cancelled_offer, subject=str(a["id"]), key=a["volunteer_id"]))
        await enqueue_many(session, events)
        return await _public(conn, await _operation_row(conn, operation_id))


def offer_events(rows: list[tuple], posts_by_id: dict, operation, caused_by: Cause | None) -> list[OutboxRow]:
    """One AssignmentOffered outbox row per new assignment row (ASSIGNMENT_COLUMNS order), keyed by volunteer."""
    now = datetime.now(UTC)
    name, op_id = operation["name"], str(operation["id"])
    places = {pid: Place(name=p["name"], lat=p["lat"], lon=p["lon"]) for pid, p in posts_by_id.items()}
    out = []
    for event_id, (aid, _op, post_id, vid, _status, wave, _dist, start, end, _offered, respond_by) in zip(
        fast_event_ids(len(rows)), rows, strict=True
    ):
        aid = str(aid)
        offer = AssignmentOffered(
            assignment_id=aid, operation_id=op_id, operation_name=name, post_id=str(post_id), volunteer_id=vid,
            shift_start=start, shift_end=end, place=places[post_id], respond_by=respond_by, wave=wave,
        )
        out.append(outbox_row(offer, subject=aid, key=vid, caused_by=caused_by, at=now, event_id=event_id))
    return out


async def store_offers(session: AsyncSession, rows: list[tuple], posts_by_id: dict, operation, caused_by: Cause | None) -> None:
    """COPY new assignment rows and enqueue one offer event each."""
    if not rows:
        return
    conn = await raw_connection(session)
    await conn.copy_records_to_table("assignments", records=rows, columns=list(ASSIGNMENT_COLUMNS))
    await enqueue_many(session, offer_events(rows, posts_by_id, operation, caused_by))


PLANNER_PROCESSES = 2  # a province's zones are planned in this many worker processes (the host has 2 cores)


@contextmanager
def zone_map(volunteers: int, posts: int) -> Iterator[Callable]:
    """The `map` a province's zones are planned with: over 2 worker processes (spawned, so none inherits the service's
    threads), started at once so they import while the problem compiles — only when the problem may be planned by
    parts (`province_plan.may_be_by_parts`); the builtin otherwise."""
    if not may_be_by_parts(volunteers, posts):
        yield map
        return
    pool = ProcessPoolExecutor(max_workers=PLANNER_PROCESSES, mp_context=multiprocessing.get_context("spawn"),
                               initializer=retain_freed_memory)
    for _ in range(PLANNER_PROCESSES):
        pool.submit(int)  # each submit starts a worker while fewer than max_workers run
    try:
        yield pool.map
    finally:
        pool.shutdown(cancel_futures=True)


class Planned(NamedTuple):
    """A plan as the service stores it: who goes where, heads left empty per post, why, and how the planner got there."""

    volunteer_index: np.ndarray
    post_index: np.ndarray
    unfilled: np.ndarray
    distance_km: np.ndarray
    why: dict
    planner: dict  # `method` (optimal | nearest), and for the optimal planner its flow `rounds`, `edges`, `heads_bound`
    #                and `travel_gap_pct` (proven bound on how much less any plan filling the same heads could travel; None:
    #                not proven, as for a province planned by zones)


def plan_and_explain(volunteers: list, posts: list, kind: str) -> Planned:
    """The plan (nearest-N for emergencies, the optimal planner otherwise) and why each short post stays short."""
    if kind != "emergency":
        with zone_map(len(volunteers), len(posts)) as map_parts:
            problem = AssignmentProblem(volunteers, posts)
            plan = plan_by_scale(problem, map_parts=map_parts)
        vi, pi, unfilled, distance = plan.volunteer_index, plan.post_index, plan.unfilled, plan.distance_km
        gap = float(plan.travel_gap)
        planner = {"method": "optimal", "rounds": int(plan.rounds), "edges": int(plan.edges), "heads_bound": int(plan.bound_heads),
                   "travel_gap_pct": round(100 * gap, 3) if math.isfinite(gap) else None}
    else:
        planner = {"method": "nearest"}
        problem = AssignmentProblem(volunteers, posts)
        taken = np.zeros(len(volunteers), dtype=bool)
        vi, pi = [], []
        for p in np.argsort(problem.p_priority, kind="stable"):
            chosen = nearest_available(problem, int(p), count=int(problem.p_headcount[p]), exclude=taken)
            taken[chosen] = True
            vi.extend(chosen.tolist())
            pi.extend([int(p)] * len(chosen))
        vi, pi = np.array(vi, dtype=np.int64), np.array(pi, dtype=np.int64)
        unfilled = problem.p_headcount - np.bincount(pi, minlength=len(posts))
        distance = problem.distance_km(vi, pi)
    short = np.flatnonzero(unfilled)
    why = shortfall_reasons(problem, Plan(vi, pi, distance, unfilled, 0.0, 0, 0, 0), short[:200]) if len(short) else {}
    return Planned(vi, pi, unfilled, distance, why, planner)


def shortfall_report(post_rows: list, unfilled: np.ndarray, why: dict) -> list[dict]:
    """Per short post: its name, heads, heads left empty, and why (with the pools behind the reason)."""
    return [
        {"post_id": str(post_rows[p]["id"]), "post_name": post_rows[p]["name"], "headcount": int(post_rows[p]["headcount"]),
         "unfilled": int(unfilled[p]), "eligible_pool": None, **why.get(int(p), {})}
        for p in np.flatnonzero(unfilled)
    ]


async def preview_plan(*, sessions: Sessions, principal: Principal, operation_id: str) -> dict:
    """What the planner would do with a draft now, stored nowhere: heads it can fill and why the rest cannot be."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await operation_or_404(conn, operation_id, staff=principal)
        post_rows = await conn.fetch("SELECT * FROM posts WHERE operation_id = $1 ORDER BY id", row["id"])
        if not post_rows:
            return {"required": 0, "fillable": 0, "unfilled": 0, "shortfall": []}
        volunteers = await planner_volunteers(conn, window_start=min(p["shift_start"] for p in post_rows),
                                              window_end=max(p["shift_end"] for p in post_rows))
    posts = [post_for_planner(p) for p in post_rows]
    previewed = await asyncio.to_thread(plan_and_explain, volunteers, posts, row["kind"])
    unfilled, why = previewed.unfilled, previewed.why
    required = int(sum(p["headcount"] for p in post_rows))
    return {"required": required, "fillable": required - int(unfilled.sum()), "unfilled": int(unfilled.sum()),
            "shortfall": shortfall_report(post_rows, unfilled, why)}


async def plan_operation(session: AsyncSession, *, activated: OperationActivated, cause: EventMeta) -> None:
    """Plan every post of an activated operation at once and offer each chosen volunteer their shift."""
    started = time.perf_counter()
    conn = await raw_connection(session)
    operation = await _operation_row(conn, activated.operation_id, lock=True)
    if operation is None:
        raise PoisonMessage(f"unknown operation {activated.operation_id}: activation cannot be planned")
    if operation["planned_at"] is not None or operation["status"] == "closed":
        log.info("operation %s already planned; activation %s changes nothing", operation["id"], cause.id)
        return
    post_rows = await conn.fetch("SELECT * FROM posts WHERE operation_id = $1 ORDER BY id", operation["id"])
    if not post_rows:
        raise PoisonMessage(f"operation {activated.operation_id} has no posts to plan")
    window_start = min(p["shift_start"] for p in post_rows)
    window_end = max(p["shift_end"] for p in post_rows)
    volunteers = await planner_volunteers(conn, window_start=window_start, window_end=window_end)
    posts = [post_for_planner(p) for p in post_rows]
    loaded = time.perf_counter()

    vi, pi, unfilled, distance, why, planner = await asyncio.to_thread(plan_and_explain, volunteers, posts, operation["kind"])
    solved = time.perf_counter()
    now = datetime.now(UTC)
    respond_s = EMERGENCY_RESPOND_S if operation["kind"] == "emergency" else operation["respond_within_s"]
    respond_by = now + timedelta(seconds=respond_s)
    rows = []
    for v, p, d in zip(vi.tolist(), pi.tolist(), distance.tolist(), strict=True):
        post = post_rows[p]
        rows.append((uuid.uuid4(), operation["id"], post["id"], volunteers[v].id, "offered", 0, d,
                     post["shift_start"], post["shift_end"], now, min(respond_by, post["shift_end"])))
    await store_offers(session, rows, {p["id"]: p for p in post_rows}, operation, cause)
    shortfall = shortfall_report(post_rows, unfilled, why)
    summary = {
        "required": int(sum(p["headcount"] for p in post_rows)), "offered": len(rows), "unfilled": int(unfilled.sum()),
        "eligible_volunteers": len(volunteers), "total_distance_km": round(float(distance.sum()), 3),
        "seconds": {"load": round(loaded - started, 3), "solve": round(solved - loaded, 3),
                    "store": round(time.perf_counter() - solved, 3)},
        "planner": planner, "shortfall": shortfall,
    }
    await conn.execute(
        "UPDATE operations SET status = 'running', planned_at = $2, plan_summary = $3::text::jsonb WHERE id = $1",
        operation["id"], now, orjson.dumps(summary).decode(),
    )
    metrics.PLANS.labels(operation["kind"]).inc()
    metrics.PLAN_SECONDS.observe(time.perf_counter() - started)
    log.info("planned operation %s: %d offers, %d unfilled, %s, planner %s", operation["id"], len(rows), int(unfilled.sum()),
             summary["seconds"], planner)


async def open_emergency_operation(session: AsyncSession, *, escalation: EscalationRaised, cause: EventMeta) -> None:
    """Create an emergency operation with one post at the escalated place, and activate it."""
    if escalation.ends_at <= escalation.starts_at:
        raise PoisonMessage(f"escalation {escalation.escalation_id}: ends_at is not after starts_at")
    if escalation.headcount < 1:
        raise PoisonMessage(f"escalation {escalation.escalation_id}: headcount must be at least 1")
    conn = await raw_connection(session)
    exists = await conn.fetchval("SELECT 1 FROM operations WHERE escalation_id = $1", escalation.escalation_id)
    if exists:
        return
    operation_id = uuid.uuid4()
    org_path = escalation.org_path or "/"
    await conn.execute(
        "INSERT INTO operations (id, kind, name, description, org_path, respond_within_s, escalation_id, created_by)"
        " VALUES ($1, 'emergency', $2, $3, $4, $5, $6, $7)",
        operation_id, escalation.name, f"案件 {escalation.case_id} 升级: {escalation.kind}", org_path,
        EMERGENCY_RESPOND_S, escalation.escalation_id, "intel",
    )
    post = PostBase(
        name=escalation.name, lat=escalation.lat, lon=escalation.lon, shift_start=escalation.starts_at,
        shift_end=escalation.ends_at, headcount=escalation.headcount, required_skills=escalation.skills,
        required_teams=escalation.teams, priority=1, org_path=org_path, geofence_m=500,
        max_distance_km=escalation.radius_km,
    )
    await _insert_posts(conn, operation_id, org_path, [post])
    row = await _operation_row(conn, str(operation_id))
    await _activate(session, row, by="intel", caused_by=cause)
