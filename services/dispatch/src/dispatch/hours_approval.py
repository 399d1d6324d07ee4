"""Staff use cases: the hours waiting for approval in scope, and approving or declining them, singly or in bulk.

Hours whose attendance was flagged (late_sync, device_clock_ahead, stale_qr, far_from_post, auto_checkout) are
pending at check-out; approving them publishes `ServiceHoursRecorded` (so rewards and the bank see only approved
hours); declining keeps them, with the reason, and publishes nothing.
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
from dispatch.offers import hours_recorded
from dispatch.schemas import HoursDecided, HoursDecision, HoursPending

Sessions = async_sessionmaker[AsyncSession]

_PENDING = """
SELECT a.id, a.operation_id, o.name AS operation_name, a.post_id, p.name AS post_name, p.org_path AS post_org_path,
       a.volunteer_id, a.shift_start, a.shift_end, a.checked_in_at, a.checked_out_at, a.hours, a.review_reason
FROM assignments a JOIN operations o ON o.id = a.operation_id JOIN posts p ON p.id = a.post_id
WHERE a.hours_status = 'pending' AND ($1::text IS NULL OR p.org_path = $1 OR p.org_path LIKE $2)
  AND ($3::uuid IS NULL OR a.operation_id = $3)
ORDER BY a.shift_end, a.id LIMIT $4
"""


async def pending_hours(*, sessions: Sessions, principal: Principal, operation_id: str | None, limit: int) -> list[HoursPending]:
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
    return [HoursPending(**{**dict(r), "assignment_id": str(r["id"]), "operation_id": str(r["operation_id"]), "post_id": str(r["post_id"])})
            for r in rows]


async def decide_hours(
    *, sessions: Sessions, principal: Principal, decision: HoursDecision, verdict: Literal["approved", "declined"], now: datetime | None = None
) -> HoursDecided:
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
        rows = await conn.fetch(
            "SELECT a.*, p.org_path AS post_org_path, p.difficulty, p.risk FROM assignments a JOIN posts p ON p.id = a.post_id"
            " WHERE a.id = ANY($1::uuid[]) ORDER BY a.id FOR UPDATE OF a", ids,
        )
        if len(rows) != len(ids):
            raise NotFound("任务不存在 (no such assignment)", field="assignment_ids")
        for row in rows:
            ensure_staff_covers(principal, row["post_org_path"], field="assignment_ids")
        unsettled = [r for r in rows if r["hours_status"] not in ("pending", verdict)]
        if unsettled:
            raise Conflict(f"服务时长不在待审状态 (hours not pending): {', '.join(str(r['id']) for r in unsettled[:5])}", field="assignment_ids")
        pending = [r for r in rows if r["hours_status"] == "pending"]
        if pending:
            await conn.execute(
                "UPDATE assignments SET hours_status = $2, hours_decided_by = $3, hours_decided_at = $4, hours_decline_reason = $5"
                " WHERE id = ANY($1::uuid[])",
                [r["id"] for r in pending], verdict, principal.sub, now, decision.reason if verdict == "declined" else None,
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
    return HoursDecided(decided=[str(r["id"]) for r in pending], already_decided=[str(r["id"]) for r in rows if r["hours_status"] == verdict])
