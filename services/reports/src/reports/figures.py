"""The county's figures for a period and an org unit, read from the projections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

ROOT = "(SELECT path FROM org_units WHERE kind = 'county' ORDER BY length(path) LIMIT 1)"


def under(column: str) -> str:
    """SQL: `column` lies at or below the scope path ($1 the path, $2 the path with a trailing slash)."""
    return f"({column} = $1 OR starts_with({column}, $2))"


@dataclass(frozen=True)
class Scope:
    """What a report covers: an org path and the county's calendar days `first`..`last`, both included."""

    org_path: str
    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        """The first instant of the period."""
        return datetime.combine(self.first, time(0), self.zone)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.last + timedelta(days=1), time(0), self.zone)

    @property
    def path_args(self) -> tuple[str, str]:
        """$1 and $2 of `under`."""
        path = self.org_path.rstrip("/") or "/"
        return path, path.rstrip("/") + "/"


def _number(value) -> int | float:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(round(value, 2))
    return value or 0


def _counts(rows, key: str = "k") -> dict[str, int]:
    return {str(r[key]): r["n"] for r in rows if r[key] is not None}


async def volunteer_figures(conn: asyncpg.Connection, scope: Scope) -> dict:
    """Volunteers as they stand now: by status; the active ones by level, star, recruitment mode and team."""
    p = scope.path_args
    by_status = await conn.fetch(f"SELECT status AS k, count(*) AS n FROM volunteers WHERE {under('org_path')} GROUP BY 1", *p)
    active = await conn.fetch(
        f"SELECT CASE WHEN grouping(core) = 1 THEN NULL WHEN core THEN 'core' ELSE 'ordinary' END AS level, star, recruitment_mode,"
        f" count(*) AS n FROM volunteers"
        f" WHERE status = 'active' AND {under('org_path')} GROUP BY GROUPING SETS ((core), (star), (recruitment_mode))", *p,
    )
    teams = await conn.fetch(
        f"SELECT team AS k, count(*) AS n FROM volunteers, unnest(teams) AS team WHERE status = 'active' AND {under('org_path')}"
        " GROUP BY 1", *p,
    )
    statuses = _counts(by_status)
    return {
        "total": sum(statuses.values()),
        "by_status": statuses,
        "active_by_level": _counts(active, "level"),
        "active_by_star": _counts(active, "star"),
        "active_by_recruitment_mode": _counts(active, "recruitment_mode"),
        "active_by_team": _counts(teams),
    }


async def training_figures(conn: asyncpg.Connection, scope: Scope) -> dict:
    """Training sessions held in the period and attendance, by the volunteer's level and by the session's level."""
    rows = await conn.fetch(
        "SELECT grouping(t.level, v.core) AS grouped, t.level AS session_level,"
        " CASE WHEN grouping(v.core) = 1 THEN NULL WHEN v.core THEN 'core' WHEN v.core IS NULL THEN 'unknown' ELSE 'ordinary' END"
        " AS volunteer_level, count(*) AS n, count(DISTINCT t.session_id) AS sessions"
        " FROM trainings t LEFT JOIN volunteers v USING (volunteer_id)"
        f" WHERE {under('t.org_path')} AND t.attended_on BETWEEN $3 AND $4 GROUP BY GROUPING SETS ((), (t.level), (v.core))",
        *scope.path_args, scope.first, scope.last,
    )
    total = next((r for r in rows if r["grouped"] == 3), None)  # the () set: both columns rolled up
    return {
        "sessions_held": total["sessions"] if total else 0,
        "attendances": total["n"] if total else 0,
        "attendances_by_volunteer_level": {r["volunteer_level"]: r["n"] for r in rows if r["volunteer_level"] is not None},
        "sessions_by_level": {r["session_level"]: r["sessions"] for r in rows if r["session_level"] is not None},
    }


TIPS_IN_SCOPE = (
    f"FROM tips t LEFT JOIN org_units o USING (org_unit_id) WHERE t.submitted_at >= $3 AND t.submitted_at < $4"
    f" AND {under(f'coalesce(o.path, {ROOT})')}"
)


async def tip_figures(conn: asyncpg.Connection, scope: Scope) -> dict:
    """Tips taken in during the period, by category and by outcome of review."""
    rows = await conn.fetch(
        f"SELECT t.category, coalesce(t.verdict, 'pending') AS outcome, count(*) AS n {TIPS_IN_SCOPE}"
        " GROUP BY GROUPING SETS ((t.category), (coalesce(t.verdict, 'pending')))", *scope.path_args, scope.start, scope.end,
    )
    by_category = _counts(rows, "category")
    return {"taken_in": sum(by_category.values()), "by_category": by_category, "by_outcome": _counts(rows, "outcome")}


CASE_PLACE = (  # the org unit of the case's first tip, else of its earliest tip (each by index)
    "FROM cases c LEFT JOIN org_units o ON o.org_unit_id = coalesce("
    "(SELECT t.org_unit_id FROM tips t WHERE t.tip_id = c.first_tip_id),"
    " (SELECT t.org_unit_id FROM tips t WHERE t.case_id = c.case_id ORDER BY t.submitted_at LIMIT 1))"
    f" WHERE {under(f'coalesce(o.path, {ROOT})')}"
)
COUNTED_OUTCOMES = ("suspects_caught", "fugitives_caught", "dens_closed", "seizures")


async def case_figures(conn: asyncpg.Connection, scope: Scope, *, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Cases handed to the police in the period (placed where their first tip came from), their outcomes and counts."""
    sums = ", ".join(f"sum(coalesce(c.{name}, 0)) AS {name}" for name in COUNTED_OUTCOMES)
    rows = await conn.fetch(
        f"SELECT coalesce(c.outcome, 'awaiting') AS outcome, count(*) AS n, {sums} {CASE_PLACE}"
        " AND c.forwarded_at >= $3 AND c.forwarded_at < $4 GROUP BY 1",
        *scope.path_args, since or scope.start, until or scope.end,
    )
    figures = {"forwarded": sum(r["n"] for r in rows), "by_outcome": _counts(rows, "outcome")}
    for name in COUNTED_OUTCOMES:
        figures[name] = int(sum(r[name] for r in rows))
    return figures


async def community_figures(conn: asyncpg.Connection, scope: Scope, *, since: datetime | None = None,
                            until: datetime | None = None) -> dict:
    """Public needs and disputes taken in during the period; disputes mediated (closed) in it, by outcome."""
    args = (*scope.path_args, since or scope.start, until or scope.end)
    needs = await conn.fetch(
        f"SELECT status, category, count(*) AS n FROM needs WHERE {under('org_path')} AND created_at >= $3 AND created_at < $4"
        " GROUP BY GROUPING SETS ((status), (category))", *args,
    )
    disputes = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE created_at >= $3 AND created_at < $4) AS taken_in,"
        f" count(*) FILTER (WHERE status = 'closed' AND closed_at >= $3 AND closed_at < $4) AS mediated,"
        f" coalesce(sum(sessions) FILTER (WHERE created_at >= $3 AND created_at < $4), 0) AS sessions"
        f" FROM disputes WHERE {under('org_path')}", *args,
    )
    outcomes = await conn.fetch(
        f"SELECT outcome AS k, count(*) AS n FROM disputes WHERE {under('org_path')} AND status = 'closed'"
        " AND closed_at >= $3 AND closed_at < $4 GROUP BY 1", *args,
    )
    need_statuses = _counts(needs, "status")
    return {
        "needs": {"taken_in": sum(need_statuses.values()), "by_status": need_statuses, "by_category": _counts(needs, "category")},
        "disputes": {"taken_in": disputes["taken_in"], "mediated": disputes["mediated"],
                     "mediation_sessions": int(disputes["sessions"]), "mediated_by_outcome": _counts(outcomes)},
    }


async def reward_figures(conn: asyncpg.Connection, scope: Scope) -> dict:
    """The alliance bank in the period: case rewards paid, points and hours banked, redemptions (volunteers' accounts)."""
    r = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE l.rule_line = 'case.reward' AND l.amount > 0) AS case_rewards,"
        " coalesce(sum(l.amount) FILTER (WHERE l.rule_line = 'case.reward'), 0) AS case_reward_points,"
        " coalesce(sum(l.amount) FILTER (WHERE l.unit = 'points' AND NOT l.pending AND l.rule_line IS DISTINCT FROM 'redemption'), 0)"
        " AS points_banked,"
        " coalesce(sum(l.amount) FILTER (WHERE l.unit = 'hours' AND NOT l.pending), 0) AS hours_banked,"
        " count(*) FILTER (WHERE l.rule_line = 'redemption') AS redemptions,"
        " coalesce(-sum(l.amount) FILTER (WHERE l.rule_line = 'redemption'), 0) AS redeemed_points"
        f" FROM ledger l JOIN volunteers v USING (volunteer_id) WHERE l.posted_at >= $3 AND l.posted_at < $4 AND {under('v.org_path')}",
        *scope.path_args, scope.start, scope.end,
    )
    return {name: _number(r[name]) for name in r.keys()}


async def bulletin_figures(conn: asyncpg.Connection, scope: Scope) -> dict:
    """Bulletins published in the period whose audience includes or lies inside the scope."""
    rows = await conn.fetch(
        "SELECT case_type AS k, count(*) AS n, max(serial) AS last_serial FROM bulletins b"
        " WHERE published_at >= $3 AND published_at < $4 AND EXISTS (SELECT 1 FROM unnest(b.audience_org_paths) AS a"
        f" WHERE {under('a')} OR starts_with($2, rtrim(a, '/') || '/')) GROUP BY 1",
        *scope.path_args, scope.start, scope.end,
    )
    by_type = _counts(rows)
    serials = [r["last_serial"] for r in rows if r["last_serial"] is not None]
    return {"issued": sum(by_type.values()), "by_case_type": by_type, "last_serial": max(serials) if serials else None}


OPERATION_ROW = (
    "SELECT o.operation_id, o.name, o.kind, o.org_path, o.headcount, o.activated_at, o.closed_at,"
    " (SELECT count(*) FILTER (WHERE a.answer = 'accepted') FROM assignments a WHERE a.operation_id = o.operation_id) AS accepted,"
    " (SELECT coalesce(sum(h.hours), 0) FROM hours h WHERE h.operation_id = o.operation_id) AS hours"
    " FROM operations o"
)


def _operation(r) -> dict:
    headcount = r["headcount"]
    return {
        "operation_id": r["operation_id"], "name": r["name"], "kind": r["kind"], "org_path": r["org_path"],
        "activated_at": r["activated_at"].isoformat() if r["activated_at"] else None,
        "closed_at": r["closed_at"].isoformat() if r["closed_at"] else None,
        "headcount": headcount, "accepted": r["accepted"],
        "fill_rate": round(min(r["accepted"] / headcount, 1.0), 4) if headcount else None,
        "hours": _number(r["hours"]),
    }


async def operation_figures(conn: asyncpg.Connection, scope: Scope) -> dict:
    """Operations activated in the period inside the scope, each with its fill rate and hours served."""
    rows = await conn.fetch(
        f"{OPERATION_ROW} WHERE o.activated_at >= $3 AND o.activated_at < $4 AND {under(f'coalesce(o.org_path, {ROOT})')}"
        " ORDER BY o.activated_at", *scope.path_args, scope.start, scope.end,
    )
    items = [_operation(r) for r in rows]
    return {"count": len(items), "hours": _number(sum(Decimal(str(i["hours"])) for i in items)), "items": items}


async def county_figures(conn: asyncpg.Connection, scope: Scope) -> dict:
    """Every figure of a report, section by section."""
    community = await community_figures(conn, scope)
    return {
        "scope": {"org_path": scope.org_path, "from": scope.first.isoformat(), "to": scope.last.isoformat(),
                  "org_name": await conn.fetchval("SELECT name FROM org_units WHERE path = $1", scope.path_args[0])},
        "volunteers": await volunteer_figures(conn, scope),
        "training": await training_figures(conn, scope),
        "tips": await tip_figures(conn, scope),
        "cases": await case_figures(conn, scope),
        "needs": community["needs"],
        "disputes": community["disputes"],
        "rewards": await reward_figures(conn, scope),
        "bulletins": await bulletin_figures(conn, scope),
        "operations": await operation_figures(conn, scope),
    }


async def operation_summary(conn: asyncpg.Connection, operation_id: str, *, zone: ZoneInfo) -> dict | None:
    """The summary of one operation (the G20 kind): people, attendance, hours, and what was taken in during it inside its area."""
    row = await conn.fetchrow(f"{OPERATION_ROW} WHERE o.operation_id = $1", operation_id)
    if row is None or row["activated_at"] is None:
        return None
    area = row["org_path"] or await conn.fetchval(f"SELECT {ROOT}") or "/"
    people = await conn.fetchrow(
        "SELECT count(*) AS offers, count(DISTINCT post_id) AS posts,"
        " count(DISTINCT volunteer_id) FILTER (WHERE answer = 'accepted') AS volunteers,"
        " count(*) FILTER (WHERE answer = 'declined') AS declined, count(*) FILTER (WHERE answer = 'expired') AS expired,"
        " count(*) FILTER (WHERE attendance IN ('checked_in', 'checked_out')) AS attended,"
        " count(*) FILTER (WHERE attendance = 'no_show') AS no_shows FROM assignments WHERE operation_id = $1", operation_id,
    )
    served = await conn.fetchrow(
        "SELECT count(DISTINCT volunteer_id) AS volunteers FROM hours WHERE operation_id = $1", operation_id,
    )
    since = row["activated_at"]
    until = row["closed_at"] or datetime.now(zone)
    scope = Scope(area, since.astimezone(zone).date(), until.astimezone(zone).date(), zone)
    tips = await conn.fetch(
        f"SELECT t.category AS k, count(*) AS n {TIPS_IN_SCOPE} GROUP BY 1", *scope.path_args, since, until,
    )
    community = await community_figures(conn, scope, since=since, until=until)
    tip_counts = _counts(tips)
    return {
        **_operation(row),
        "area": area,
        "posts": people["posts"], "offers": people["offers"], "volunteers_dispatched": people["volunteers"],
        "declined": people["declined"], "expired": people["expired"], "attended": people["attended"],
        "no_shows": people["no_shows"], "volunteers_served": served["volunteers"],
        "tips": {"taken_in": sum(tip_counts.values()), "by_category": tip_counts},
        "cases": await case_figures(conn, scope, since=since, until=until),
        "needs_taken_in": community["needs"]["taken_in"],
        "disputes_taken_in": community["disputes"]["taken_in"],
    }


def csv_rows(figures: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Flatten figures into (section, measure, key, value) rows; an operation list becomes one row per operation and field."""
    rows: list[tuple[str, ...]] = []
    for name, value in figures.items():
        path = (*prefix, name)
        if isinstance(value, dict):
            rows.extend(csv_rows(value, path))
        elif isinstance(value, list):
            for item in value:
                label = item.get("operation_id", "") if isinstance(item, dict) else ""
                rows.extend(csv_rows({k: v for k, v in item.items() if k != "operation_id"}, (*path, label)))
        else:
            section, rest = path[0], path[1:]
            measure = rest[0] if rest else ""
            key = "/".join(rest[1:])
            rows.append((section, measure, key, "" if value is None else str(value)))
    return rows
