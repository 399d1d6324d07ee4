"""Leaderboards per org unit and period, and commendations (model volunteers, brands, organisations)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Unprocessable

PERIOD = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """`2026` → the year, `2026-11` → the month, as [start, end) in UTC."""
    match = PERIOD.match(period)
    if not match or (match.group(2) and not 1 <= int(match.group(2)) <= 12):
        raise Unprocessable("周期格式应为 YYYY 或 YYYY-MM", field="period")
    year = int(match.group(1))
    if not 1 <= year <= 9998:
        raise Unprocessable("周期的年份应在 0001 到 9998 之间", field="period")
    if match.group(2) is None:
        return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    month = int(match.group(2))
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return datetime(year, month, 1, tzinfo=UTC), end


# Only entries of the volunteer's spendable account count: tip points pending review are left out, so a
# leaderboard open to every role never jumps when someone has just reported a tip (it moves on verification).
LEADERBOARD = """
SELECT s.volunteer_id, s.display_name, s.org_path, s.star,
       sum(CASE WHEN e.credit_account = 'volunteer:' || e.volunteer_id THEN e.amount ELSE -e.amount END) AS total
FROM ledger_entries e JOIN volunteer_standing s ON s.volunteer_id = e.volunteer_id
WHERE e.posted_at >= $1 AND e.posted_at < $2 AND e.unit = $3 AND e.rule_line <> 'redemption'
  AND 'volunteer:' || e.volunteer_id IN (e.credit_account, e.debit_account)
  AND ($4 = '' OR s.org_path = $4 OR s.org_path LIKE $4 || '/%')
GROUP BY s.volunteer_id, s.display_name, s.org_path, s.star
HAVING sum(CASE WHEN e.credit_account = 'volunteer:' || e.volunteer_id THEN e.amount ELSE -e.amount END) > 0
ORDER BY total DESC, s.volunteer_id LIMIT $5
"""


async def _leaderboard(conn, *, org_path: str, period: str, unit: str, limit: int) -> list[dict]:
    start, end = period_bounds(period)
    rows = await conn.fetch(LEADERBOARD, start, end, unit, org_path.rstrip("/"), limit)
    return [
        {"rank": i + 1, "volunteer_id": r["volunteer_id"], "display_name": r["display_name"], "org_path": r["org_path"],
         "star": r["star"], "total": float(r["total"])}
        for i, r in enumerate(rows)
    ]


async def leaderboard(*, sessions: async_sessionmaker[AsyncSession], org_path: str, period: str, unit: str, limit: int) -> dict:
    """Volunteers under an org unit ranked by points (or hours) earned in a period; redemptions and unreviewed tip points do not count."""
    async with sessions() as session:
        conn = await raw_connection(session)
        ranking = await _leaderboard(conn, org_path=org_path, period=period, unit=unit, limit=limit)
    return {"org_path": org_path, "period": period, "unit": unit, "ranking": ranking}


async def commend_model_volunteers(
    *, sessions: async_sessionmaker[AsyncSession], month: str, org_path: str, count: int, awarded_by: str,
) -> list[dict]:
    """Name the month's model volunteers of an org unit (top `count` by points earned); naming again changes nothing."""
    if not re.match(r"^\d{4}-\d{2}$", month):
        raise Unprocessable("月份格式应为 YYYY-MM", field="month")
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"commend:{month}:{org_path}")
        existing = await conn.fetch(
            "SELECT * FROM commendations WHERE kind = 'model_volunteer' AND period = $1 AND org_path = $2 ORDER BY rank", month, org_path
        )
        if existing:
            return [_commendation(r) for r in existing]
        ranking = await _leaderboard(conn, org_path=org_path, period=month, unit="points", limit=count)
        rows = []
        for entry in ranking:
            rows.append(await conn.fetchrow(
                "INSERT INTO commendations (commendation_id, kind, period, org_path, subject_id, subject_name, citation, rank, points, awarded_by) "
                "VALUES ($1, 'model_volunteer', $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
                uuid.uuid4(), month, org_path, entry["volunteer_id"], entry["display_name"] or "",
                f"{month} 月度模范志愿者（第{entry['rank']}名，积分 {entry['total']:g}）", entry["rank"], entry["total"], awarded_by,
            ))
    return [_commendation(r) for r in rows]


async def commend(
    *, sessions: async_sessionmaker[AsyncSession], kind: str, period: str, org_path: str, subject_id: str, subject_name: str,
    citation: str, awarded_by: str,
) -> dict:
    """Record a yearly award to a service brand, an organisation or an individual."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await conn.fetchrow(
            "INSERT INTO commendations (commendation_id, kind, period, org_path, subject_id, subject_name, citation, awarded_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (kind, period, org_path, subject_id) DO UPDATE "
            "SET citation = excluded.citation, subject_name = excluded.subject_name RETURNING *",
            uuid.uuid4(), kind, period, org_path, subject_id, subject_name, citation, awarded_by,
        )
    return _commendation(row)


async def list_commendations(*, sessions: async_sessionmaker[AsyncSession], period: str | None, kind: str | None, org_path: str) -> list[dict]:
    """Commendations, optionally of a period and kind, under an org unit."""
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch(
            "SELECT * FROM commendations WHERE ($1::text IS NULL OR period = $1) AND ($2::text IS NULL OR kind = $2) "
            "AND ($3 = '' OR org_path = $3 OR org_path LIKE $3 || '/%') ORDER BY period DESC, kind, rank NULLS LAST, awarded_at LIMIT 500",
            period, kind, org_path.rstrip("/"),
        )
    return [_commendation(r) for r in rows]


def _commendation(row) -> dict:
    return {**dict(row), "commendation_id": str(row["commendation_id"]), "points": float(row["points"]) if row["points"] is not None else None}
