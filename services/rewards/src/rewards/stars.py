"""Star ratings: review volunteers whose record changed, announce a change, apply it after the notice period."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.contracts.rewards import StarChanged, StarChangeWithdrawn
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import NotFound
from shouwang_shared.outbox import enqueue_many, outbox_row

from rewards.rules import now_utc, rule_book
from rewards.scoring import RuleSet, StarAssessment, assess_star

log = logging.getLogger(__name__)

SWEEP_BATCH = 2000  # standing records one sweep reviews at most; a full batch means a backlog, swept again at once
STANDING = """
SELECT s.volunteer_id, s.star, s.pending_star, s.pending_effective_at, s.pending_reason, s.training_compliant,
       s.shifts_completed, s.no_shows, s.org_path, s.display_name, s.status,
       coalesce(p.balance, 0) AS points, coalesce(h.balance, 0) AS hours
FROM volunteer_standing s
LEFT JOIN balances p ON p.account = 'volunteer:' || s.volunteer_id AND p.unit = 'points'
LEFT JOIN balances h ON h.account = 'volunteer:' || s.volunteer_id AND h.unit = 'hours'
"""


def reliability(row) -> float | None:
    """Completed shifts over completed plus no-shows; None before any shift."""
    total = row["shifts_completed"] + row["no_shows"]
    return row["shifts_completed"] / total if total else None


def assess(rules: RuleSet, row) -> StarAssessment:
    """The star a standing row earns under `rules`."""
    return assess_star(
        rules, hours=float(row["hours"]), points=float(row["points"]), reliability=reliability(row),
        training_compliant=row["training_compliant"],
    )


async def sweep_stars(*, sessions: async_sessionmaker[AsyncSession], now: datetime | None = None, limit: int = SWEEP_BATCH) -> dict:
    """Apply star changes whose notice has ended, then review changed records and announce new changes."""
    now = now or now_utc()
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        applied = await conn.fetch(
            """
            UPDATE volunteer_standing SET star = pending_star, pending_star = NULL, pending_effective_at = NULL,
                   pending_reason = NULL, needs_review = TRUE, updated_at = now()
            WHERE pending_star IS NOT NULL AND pending_effective_at <= $1 RETURNING volunteer_id
            """,
            now,
        )
        if applied:
            await conn.execute(
                "UPDATE star_history SET applied_at = $2 WHERE applied_at IS NULL AND volunteer_id = ANY($1::text[]) AND effective_at <= $2",
                [r["volunteer_id"] for r in applied], now,
            )
        rules = (await rule_book(session)).current(now)
        if rules is None:
            return {"applied": len(applied), "reviewed": 0, "announced": 0}
        rows = await conn.fetch(STANDING + " WHERE s.needs_review ORDER BY s.volunteer_id LIMIT $1 FOR UPDATE OF s SKIP LOCKED", limit)
        announced = await _review(session, conn, rules, rows, now)
        if rows:
            await conn.execute(
                "UPDATE volunteer_standing SET needs_review = FALSE WHERE volunteer_id = ANY($1::text[])", [r["volunteer_id"] for r in rows]
            )
    return {"applied": len(applied), "reviewed": len(rows), "announced": announced}


async def _review(session: AsyncSession, conn, rules: RuleSet, rows, now: datetime) -> int:
    events, announced = [], 0
    for row in rows:
        target = assess(rules, row).star
        if target == row["star"]:
            if row["pending_star"] is not None:  # the record came back before the notice ended: withdrawn
                await conn.execute(
                    "UPDATE volunteer_standing SET pending_star = NULL, pending_effective_at = NULL, pending_reason = NULL WHERE volunteer_id = $1",
                    row["volunteer_id"],
                )
                await conn.execute(
                    "DELETE FROM star_history WHERE volunteer_id = $1 AND applied_at IS NULL", row["volunteer_id"]
                )
                withdrawal = StarChangeWithdrawn(
                    volunteer_id=row["volunteer_id"], star=row["star"], withdrawn_star=row["pending_star"],
                    withdrawn_effective_at=row["pending_effective_at"],
                    reason=f"公示期内记录恢复，撤回{row['pending_star']}星的评定，保持{row['star']}星",
                )
                events.append(outbox_row(withdrawal, subject=row["volunteer_id"]))
            continue
        if target == row["pending_star"]:
            continue
        effective_at = now + timedelta(days=rules.star_notice_days)
        direction = "升" if target > row["star"] else "降"
        reason = f"按规则 {rules.version} 评定：由{row['star']}星{direction}为{target}星（公示至 {effective_at:%Y-%m-%d}）"
        await conn.execute(
            "UPDATE volunteer_standing SET pending_star = $2, pending_effective_at = $3, pending_reason = $4 WHERE volunteer_id = $1",
            row["volunteer_id"], target, effective_at, reason,
        )
        await conn.execute("DELETE FROM star_history WHERE volunteer_id = $1 AND applied_at IS NULL", row["volunteer_id"])
        await conn.execute(
            "INSERT INTO star_history (volunteer_id, old_star, new_star, announced_at, effective_at, reason, rule_version) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            row["volunteer_id"], row["star"], target, now, effective_at, reason, rules.version,
        )
        payload = StarChanged(
            volunteer_id=row["volunteer_id"], old_star=row["star"], new_star=target, effective_at=effective_at,
            notice_until=effective_at, reason=reason,
        )
        events.append(outbox_row(payload, subject=row["volunteer_id"]))
        announced += 1
    await enqueue_many(session, events)
    return announced


async def star_of(*, sessions: async_sessionmaker[AsyncSession], volunteer_id: str, now: datetime | None = None) -> dict:
    """A volunteer's star, any announced change, and why: the record against each threshold of the rule in force."""
    now = now or now_utc()
    async with sessions() as session:
        conn = await raw_connection(session)
        row = await conn.fetchrow(STANDING + " WHERE s.volunteer_id = $1", volunteer_id)
        rules = (await rule_book(session)).current(now)
        history = await conn.fetch(
            "SELECT old_star, new_star, announced_at, effective_at, applied_at, reason, rule_version FROM star_history "
            "WHERE volunteer_id = $1 ORDER BY id DESC LIMIT 20", volunteer_id,
        )
    if row is None:
        raise NotFound("没有该志愿者的积分记录", field="volunteer_id")
    assessment = assess(rules, row) if rules else StarAssessment(row["star"], [])
    rel = reliability(row)
    return {
        "volunteer_id": volunteer_id,
        "star": row["star"],
        "org_path": row["org_path"],
        "pending": (
            {"star": row["pending_star"], "effective_at": row["pending_effective_at"], "reason": row["pending_reason"]}
            if row["pending_star"] is not None else None
        ),
        "record": {
            "hours": float(row["hours"]), "points": float(row["points"]), "reliability": rel,
            "shifts_completed": row["shifts_completed"], "no_shows": row["no_shows"],
            "training_compliant": row["training_compliant"],
        },
        "earned_star": assessment.star,
        "why": assessment.reasons,
        "rule_version": rules.version if rules else None,
        "thresholds": [t.model_dump() for t in rules.stars] if rules else [],
        "history": [dict(h) for h in history],
    }


async def sweep_star_backlog(*, sessions: async_sessionmaker[AsyncSession]) -> None:
    """One round of the periodic star sweep (`Runtime.every`): sweep until no backlog is left (`SWEEP_BATCH` a sweep at most)."""
    while (await sweep_stars(sessions=sessions))["reviewed"] >= SWEEP_BATCH:
        pass
