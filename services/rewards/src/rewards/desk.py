"""Staff desk use cases: tip points pending review and redemptions across a staff member's org scope.

Pending tip points ("one case, one reward") are settled only by intel's tip review (the case's confirmation
or the police answer, `TipReviewed`); staff see them here read-only and cannot release or revoke them.
A redemption is handed over by a station or declined with a reason; a decline refunds its points once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, Forbidden, NotFound, Unprocessable

from rewards.bank import REDEEMED, volunteer_account
from rewards.ledger import Posting, post_entries

TIME_ZONE = "Asia/Shanghai"  # periods are the county's calendar months and years


async def standing_org_path(*, sessions: async_sessionmaker[AsyncSession], volunteer_id: str) -> str | None:
    """The org path rewards knows for a volunteer (None when it has no record of them)."""
    async with sessions() as session:
        conn = await raw_connection(session)
        return await conn.fetchval("SELECT org_path FROM volunteer_standing WHERE volunteer_id = $1", volunteer_id)


PENDING_TIP_POINTS = f"""
SELECT e.entry_id::text, split_part(e.effect_key, '|', 1) AS source, e.volunteer_id, s.display_name, s.org_path,
       e.amount, e.reason, e.rule_version, e.posted_at,
       CASE WHEN r.effect_key LIKE '%|tip.report.released' THEN 'released'
            WHEN r.effect_key LIKE '%|tip.report.revoked' THEN 'revoked' ELSE 'pending' END AS status,
       r.posted_at AS settled_at
FROM ledger_entries e
JOIN volunteer_standing s ON s.volunteer_id = e.volunteer_id
LEFT JOIN LATERAL (
    SELECT effect_key, posted_at FROM ledger_entries x
    WHERE x.effect_key IN (split_part(e.effect_key, '|', 1) || '|tip.report.released', split_part(e.effect_key, '|', 1) || '|tip.report.revoked')
    LIMIT 1
) r ON TRUE
WHERE e.rule_line = 'tip.report' AND e.credit_account LIKE 'pending:volunteer:%'
  AND ($1 = '' OR s.org_path = $1 OR s.org_path LIKE $1 || '/%')
  AND ($2::text IS NULL OR to_char(e.posted_at AT TIME ZONE '{TIME_ZONE}', 'YYYY-MM') LIKE $2 || '%')
"""


async def pending_tip_points(
    *, sessions: async_sessionmaker[AsyncSession], org_path: str, period: str | None, status: str | None, limit: int,
) -> list[dict]:
    """Volunteers' tip points under an org path and period with their review status (pending, released, revoked), newest first.

    Anonymous reporters' held points are never listed: they have no org unit and must not be identified.
    """
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch(
            f"SELECT * FROM ({PENDING_TIP_POINTS}) p WHERE ($3::text IS NULL OR status = $3) ORDER BY posted_at DESC LIMIT $4",
            org_path, period, status, limit,
        )
    return [{**dict(r), "amount": float(r["amount"])} for r in rows]


REDEMPTIONS = f"""
SELECT r.*, b.name AS benefit_name, s.display_name, s.org_path
FROM redemptions r JOIN benefits b ON b.benefit_id = r.benefit_id
LEFT JOIN volunteer_standing s ON s.volunteer_id = r.volunteer_id
WHERE ($1 = '' OR s.org_path = $1 OR s.org_path LIKE $1 || '/%')
  AND ($2::text IS NULL OR to_char(r.created_at AT TIME ZONE '{TIME_ZONE}', 'YYYY-MM') LIKE $2 || '%')
  AND ($3::text IS NULL OR r.status = $3)
ORDER BY r.created_at DESC LIMIT $4
"""


def staff_redemption(row) -> dict:
    """A redemption as staff see it: who (masked name, org path), what, its status and decision."""
    return {
        "redemption_id": str(row["redemption_id"]), "volunteer_id": row["volunteer_id"], "display_name": row["display_name"],
        "org_path": row["org_path"], "benefit_id": str(row["benefit_id"]), "benefit_name": row["benefit_name"],
        "quantity": row["quantity"], "points": float(row["points"]), "status": row["status"], "created_at": row["created_at"],
        "decided_by": row["decided_by"], "decided_at": row["decided_at"], "decline_reason": row["decline_reason"],
        "refund_entry_id": str(row["refund_entry_id"]) if row["refund_entry_id"] else None,
    }


async def redemptions_in_scope(
    *, sessions: async_sessionmaker[AsyncSession], org_path: str, period: str | None, status: str | None, limit: int,
) -> list[dict]:
    """Redemptions of volunteers under an org path, filtered by period (YYYY or YYYY-MM) and status, newest first."""
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch(REDEMPTIONS, org_path, period, status, limit)
    return [staff_redemption(r) for r in rows]


async def _locked_redemption(conn, redemption_id: str, covers) -> dict:
    """The redemption row locked for a decision; 422/404/403 naming `redemption_id`."""
    try:
        rid = uuid.UUID(redemption_id)
    except ValueError as exc:
        raise Unprocessable("兑换编号格式不正确", field="redemption_id") from exc
    row = await conn.fetchrow(
        "SELECT r.*, b.name AS benefit_name, s.display_name, s.org_path FROM redemptions r "
        "JOIN benefits b ON b.benefit_id = r.benefit_id LEFT JOIN volunteer_standing s ON s.volunteer_id = r.volunteer_id "
        "WHERE r.redemption_id = $1 FOR UPDATE OF r", rid,
    )
    if row is None:
        raise NotFound("没有该兑换记录", field="redemption_id")
    if not covers(row["org_path"]):
        raise Forbidden("该兑换不在您的管辖范围内", field="redemption_id")
    return row


# What deciding a redemption the other way says: a decision is final.
_DECIDED_OTHERWISE = {
    "declined": ("该兑换已被拒绝并退回积分，不能再发放", "already_declined"),
    "handed_over": ("权益已发放，不能再拒绝", "already_handed_over"),
}


def _already_decided(row, decision: str) -> bool:
    """Whether the redemption already has `decision` (so deciding again is a no-op); 409 when it was decided otherwise."""
    if row["status"] == decision:
        return True
    if row["status"] in _DECIDED_OTHERWISE:
        message, code = _DECIDED_OTHERWISE[row["status"]]
        raise Conflict(message, field="redemption_id", code=code)
    return False


async def hand_over(*, sessions: async_sessionmaker[AsyncSession], redemption_id: str, covers, decided_by: str, now: datetime) -> dict:
    """Mark a requested redemption handed over; again on a handed-over one is a no-op, on a declined one 409."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _locked_redemption(conn, redemption_id, covers)
        if _already_decided(row, "handed_over"):
            return staff_redemption(row)
        await conn.execute(
            "UPDATE redemptions SET status = 'handed_over', decided_by = $2, decided_at = $3 WHERE redemption_id = $1",
            row["redemption_id"], decided_by, now,
        )
        return staff_redemption({**dict(row), "status": "handed_over", "decided_by": decided_by, "decided_at": now})


async def decline(
    *, sessions: async_sessionmaker[AsyncSession], redemption_id: str, reason: str, covers, decided_by: str, now: datetime,
) -> dict:
    """Decline a requested redemption with a reason: refund its points through the ledger once and put the stock back.

    Declining again is a no-op (the first reason stays); a handed-over redemption cannot be declined (409).
    """
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _locked_redemption(conn, redemption_id, covers)
        if _already_decided(row, "declined"):
            return staff_redemption(row)
        refund_id = str(uuid.uuid4())
        rid = row["redemption_id"]
        await post_entries(session, [Posting(
            effect_key=f"redemption:{rid}|redemption.refund", debit_account=REDEEMED,
            credit_account=volunteer_account(row["volunteer_id"]), volunteer_id=row["volunteer_id"], unit="points",
            amount=row["points"], reason=f"兑换{row['benefit_name']}未发放，退回积分：{reason}", rule_version="-",
            rule_line="redemption.refund", source_event_id=f"redemption:{rid}", corrects_entry_id=str(row["entry_id"]),
            entry_id=refund_id,
        )])
        await conn.execute("UPDATE benefits SET stock = stock + $2 WHERE benefit_id = $1", row["benefit_id"], row["quantity"])
        await conn.execute(
            "UPDATE redemptions SET status = 'declined', decided_by = $2, decided_at = $3, decline_reason = $4, refund_entry_id = $5 "
            "WHERE redemption_id = $1", rid, decided_by, now, reason, uuid.UUID(refund_id),
        )
        return staff_redemption({**dict(row), "status": "declined", "decided_by": decided_by, "decided_at": now,
                                 "decline_reason": reason, "refund_entry_id": refund_id})
