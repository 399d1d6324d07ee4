"""Staff use cases: the hours waiting for approval in scope, and approving or declining them, singly or in bulk.

Every check-out's hours are pending (HOURS_APPROVAL `all`, the default; under `flagged` only those whose attendance
was flagged: late_sync, device_clock_ahead, stale_qr, far_from_post, auto_checkout); approving them publishes
`ServiceHoursRecorded` (so rewards and the bank see only approved hours); declining keeps them, with the reason, and
publishes nothing.

One queue for both kinds of attendance: operation assignments (`kind` "assignment") and project-shift sign-ups
(`kind` "shift": `assignment_id` is the sign-up's id, `operation_id` the project's, `post_id` the shift's). The ids
of a decision may mix both; a project's hours are scoped by the project's org path.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, NotFound, Unprocessable
from shouwang_shared.outbox import enqueue_many

from dispatch.access import ensure_staff_covers
from dispatch.attendance import hours_served
from dispatch.offers import OPERATION_ACTIVITY, hours_recorded
from dispatch.projects.attendance import PROJECT_ACTIVITY
from dispatch.schemas import HoursDecidedPublic, HoursDecisionCreate, HoursPendingPublic

Sessions = async_sessionmaker[AsyncSession]

_PENDING = """
SELECT * FROM (
  SELECT 'assignment' AS kind, a.id, a.operation_id, o.name AS operation_name, a.post_id, p.name AS post_name,
         p.org_path AS post_org_path, a.volunteer_id, a.shift_start, a.shift_end, a.checked_in_at, a.checked_out_at, a.hours,
         a.review_reason
  FROM assignments a JOIN operations o ON o.id = a.operation_id JOIN posts p ON p.id = a.post_id WHERE a.hours_status = 'pending'
  UNION ALL
  SELECT 'shift', g.id, g.project_id, j.name, g.shift_id, j.places -> s.place_no ->> 'name', j.org_path, g.volunteer_id,
         g.starts_at, g.ends_at, g.checked_in_at, g.checked_out_at, g.hours, g.review_reason
  FROM shift_signups g JOIN projects j ON j.id = g.project_id JOIN project_shifts s ON s.id = g.shift_id WHERE g.hours_status = 'pending'
) h
WHERE ($1::text IS NULL OR h.post_org_path = $1 OR h.post_org_path LIKE $2) AND ($3::uuid IS NULL OR h.operation_id = $3)
ORDER BY h.shift_end, h.id LIMIT $4
"""
# The hours of some ids, locked, whichever kind each is; project shifts under the names the operation rows use.
_DECIDING = {
    "assignments": f"SELECT a.*, p.org_path AS post_org_path, p.difficulty, p.risk, {OPERATION_ACTIVITY}"
                   " FROM assignments a JOIN posts p ON p.id = a.post_id JOIN operations o ON o.id = a.operation_id"
                   " WHERE a.id = ANY($1::uuid[]) ORDER BY a.id FOR UPDATE OF a",
    "shift_signups": "SELECT g.*, g.project_id AS operation_id, g.shift_id AS post_id, g.starts_at AS shift_start, g.ends_at AS shift_end,"
                     f" p.org_path AS post_org_path, 1 AS difficulty, 1 AS risk, {PROJECT_ACTIVITY}"
                     " FROM shift_signups g JOIN projects p ON p.id = g.project_id JOIN project_shifts s ON s.id = g.shift_id"
                     " WHERE g.id = ANY($1::uuid[]) ORDER BY g.id FOR UPDATE OF g",
}


async def pending_hours(*, sessions: Sessions, principal: Principal, operation_id: str | None, limit: int) -> list[HoursPendingPublic]:
    """Hours waiting for approval at posts in the caller's scope, oldest shift first."""
    scope = None if principal.role == Role.OPERATOR else principal.scope_path
    ensure_staff_covers(principal, scope)
    if operation_id is not None:
        try:
            uuid.UUID(operation_id)
        except ValueError:
            raise Unprocessable("operation_id 不是有效的编号 (not a valid id)", field="operation_id") from None
    subtree = f"{scope.rstrip('/')}/%" if scope else None
    async with sessions() as session, session.begin():
        rows = await (await raw_connection(session)).fetch(_PENDING, scope, subtree, operation_id, limit)
    return [HoursPendingPublic(**{**dict(r), "assignment_id": str(r["id"]), "operation_id": str(r["operation_id"]), "post_id": str(r["post_id"])})
            for r in rows]


async def decide_hours(
    *, sessions: Sessions, principal: Principal, decision: HoursDecisionCreate, verdict: Literal["approved", "declined"], now: datetime | None = None
) -> HoursDecidedPublic:
    """Approve (publishing the hours to rewards) or decline (keeping the reason) pending hours; all in one transaction.

    Every id must be an assignment whose post the caller's scope covers (else 404 / 403 naming `assignment_ids`, and
    nothing changes); hours already decided the same way are reported, not changed; the other way round is 409.
    """
    if verdict == "declined" and not decision.reason:
        raise Unprocessable("拒绝时需要说明原因 (a reason is required to decline)", field="reason")
    try:
        ids = sorted({uuid.UUID(i) for i in decision.assignment_ids})
    except ValueError:
        raise NotFound("任务不存在 (no such assignment)", field="assignment_ids") from None
    now = now or datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        tables = {table: await conn.fetch(query, ids) for table, query in _DECIDING.items()}
        rows = [row for found in tables.values() for row in found]
        if len(rows) != len(ids):
            raise NotFound("任务不存在 (no such assignment)", field="assignment_ids")
        for row in rows:
            ensure_staff_covers(principal, row["post_org_path"], field="assignment_ids")
        unsettled = [r for r in rows if r["hours_status"] not in ("pending", verdict)]
        if unsettled:
            raise Conflict(f"服务时长不在待审状态 (hours not pending): {', '.join(str(r['id']) for r in unsettled[:5])}", field="assignment_ids")
        pending = [r for r in rows if r["hours_status"] == "pending"]
        for table, found in tables.items():
            await conn.execute(
                f"UPDATE {table} SET hours_status = $2, hours_decided_by = $3, hours_decided_at = $4, hours_decline_reason = $5"
                " WHERE id = ANY($1::uuid[]) AND hours_status = 'pending'",
                [r["id"] for r in found], verdict, principal.sub, now, decision.reason if verdict == "declined" else None,
            )
        if pending and verdict == "approved":
            org_paths = dict(await conn.fetch(
                "SELECT volunteer_id, org_path FROM volunteers WHERE volunteer_id = ANY($1::text[])", [r["volunteer_id"] for r in pending]
            ))
            events = []
            for row in pending:
                started, ended, hours = hours_served(checked_in_at=row["checked_in_at"], checked_out_at=row["checked_out_at"],
                                                     shift_start=row["shift_start"], shift_end=row["shift_end"])
                events.append(hours_recorded(row, hours, started, ended, org_paths.get(row["volunteer_id"])))  # as computed at check-out
            await enqueue_many(session, events)
    return HoursDecidedPublic(decided=[str(r["id"]) for r in pending], already_decided=[str(r["id"]) for r in rows if r["hours_status"] == verdict])
