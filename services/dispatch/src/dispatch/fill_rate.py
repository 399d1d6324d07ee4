"""The fill-rate view: per operation and post, how many heads are asked, offered, accepted, present, and what is short."""

from __future__ import annotations

from collections import Counter, defaultdict

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.db import raw_connection

from dispatch import metrics
from dispatch.operations import operation_or_404
from dispatch.planning_inputs import reliability_of

Sessions = async_sessionmaker[AsyncSession]
MEASURES = ("required", "offered", "accepted", "checked_in", "on_post", "declined", "expired", "no_show", "projected", "shortfall")


def _blank(post) -> dict:
    return {
        "post_id": str(post["id"]), "name": post["name"], "zone": post["zone"], "lat": post["lat"], "lon": post["lon"],
        "required": post["headcount"],
        "offered": 0, "pending": 0, "accepted": 0, "checked_in": 0, "on_post": 0, "declined": 0, "expired": 0,
        "no_show": 0, "declined_by_reason": {}, "projected": 0.0, "shortfall": 0.0, "eligible_pool": None,
    }


async def fill_rate(*, sessions: Sessions, principal: Principal, operation_id: str) -> dict:
    """Fill rate of an operation and each of its posts; also published as Prometheus gauges."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        operation = await operation_or_404(conn, operation_id, staff=principal)
        posts = await conn.fetch("SELECT id, name, zone, lat, lon, headcount FROM posts WHERE operation_id = $1 ORDER BY name", operation["id"])
        rows = await conn.fetch(
            "SELECT a.post_id, a.status, a.decline_reason, v.accepted, v.declined, v.expired, v.shows, v.no_shows"
            " FROM assignments a LEFT JOIN volunteers v USING (volunteer_id) WHERE a.operation_id = $1",
            operation["id"],
        )
    per_post = {p["id"]: _blank(p) for p in posts}
    reasons: dict = defaultdict(Counter)
    for r in rows:
        view = per_post[r["post_id"]]
        view["offered"] += 1
        status = r["status"]
        if status == "offered":
            view["pending"] += 1
            view["projected"] += reliability_of(dict(r) if r["accepted"] is not None else None)
        if status in ("accepted", "checked_in", "checked_out"):
            view["accepted"] += 1
            view["projected"] += 1
        if status in ("checked_in", "checked_out"):
            view["checked_in"] += 1
        if status == "checked_in":
            view["on_post"] += 1
        if status in ("declined", "expired", "no_show"):
            view[status] += 1
        if status == "declined":
            reasons[r["post_id"]][r["decline_reason"] or "未说明"] += 1
    summary = operation["plan_summary"]
    summary = orjson.loads(summary) if isinstance(summary, (str, bytes)) else (summary or {})
    eligible = {s["post_id"]: s.get("eligible_pool") for s in summary.get("shortfall", [])}
    total = {m: 0.0 for m in MEASURES}
    by_reason: Counter = Counter()
    for post_id, view in per_post.items():
        view["declined_by_reason"] = dict(reasons[post_id])
        by_reason.update(reasons[post_id])
        view["projected"] = round(view["projected"], 2)
        view["shortfall"] = round(max(0.0, view["required"] - view["projected"]), 2)
        view["eligible_pool"] = eligible.get(view["post_id"])
        for m in MEASURES:
            total[m] += view[m]
    total = {m: round(v, 2) for m, v in total.items()}
    for m in MEASURES:
        metrics.FILL.labels(str(operation["id"]), m).set(total[m])
    return {
        "operation_id": str(operation["id"]), "name": operation["name"], "status": operation["status"],
        "kind": operation["kind"], **total, "declined_by_reason": dict(by_reason),
        "fill_pct": round(100 * total["accepted"] / total["required"], 2) if total["required"] else 0.0,
        "unplanned": summary.get("unfilled"), "posts": list(per_post.values()),
    }


GAUGED_OPERATIONS: set[str] = set()  # operations this process reports, so finished ones leave the gauges


async def refresh_fill_gauges(*, sessions: Sessions) -> int:
    """Fill ratio and next shift start of every activated or running operation, for the dashboard and the fill alert."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        rows = await conn.fetch(
            """
            SELECT o.id::text AS operation_id, p.required, p.next_shift,
                   (SELECT count(*) FROM assignments a WHERE a.operation_id = o.id
                     AND a.status IN ('accepted', 'checked_in', 'checked_out')) AS accepted
              FROM operations o
              JOIN LATERAL (SELECT sum(headcount) AS required, min(shift_start) FILTER (WHERE shift_start > now()) AS next_shift
                              FROM posts WHERE operation_id = o.id) p ON TRUE
             WHERE o.status IN ('activated', 'running') AND p.required > 0
            """
        )
    current = set()
    for r in rows:
        current.add(r["operation_id"])
        metrics.FILL_RATIO.labels(r["operation_id"]).set(r["accepted"] / r["required"])
        if r["next_shift"] is not None:
            metrics.NEXT_SHIFT_START.labels(r["operation_id"]).set(r["next_shift"].timestamp())
        elif r["operation_id"] in GAUGED_OPERATIONS:
            _forget(metrics.NEXT_SHIFT_START, r["operation_id"])
    for gone in GAUGED_OPERATIONS - current:
        _forget(metrics.FILL_RATIO, gone)
        _forget(metrics.NEXT_SHIFT_START, gone)
    GAUGED_OPERATIONS.clear()
    GAUGED_OPERATIONS.update(current)
    return len(current)


def _forget(gauge, operation_id: str) -> None:
    """Drop one operation's series from a gauge (absent already is fine)."""
    try:
        gauge.remove(operation_id)
    except KeyError:
        pass
