"""Star changes announced by rewards: held until their `effective_at`, then applied (never back to an older one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.contracts.rewards import StarChanged, StarChangeWithdrawn
from shouwang_shared.outbox import enqueue_many, outbox_row

from registry.tables import PUBLIC_SELECT_OF_V
from registry.volunteers import state_payload, utcnow

Sessions = async_sessionmaker[AsyncSession]
log = logging.getLogger(__name__)
APPLY_BATCH = 1000

_APPLY_DUE = (
    "UPDATE volunteers AS v SET star = v.pending_star, star_effective_at = v.pending_star_effective_at, "
    "version = v.version + CASE WHEN v.star <> v.pending_star THEN 1 ELSE 0 END, "
    "updated_at = CASE WHEN v.star <> v.pending_star THEN now() ELSE v.updated_at END, "
    "pending_star = NULL, pending_star_effective_at = NULL, pending_star_event_id = NULL, pending_star_correlation = NULL "
    "FROM (SELECT id, star AS old_star, pending_star_event_id AS cause, pending_star_correlation AS correlation "
    "      FROM volunteers WHERE pending_star IS NOT NULL AND pending_star_effective_at <= :now {only} "
    "      ORDER BY pending_star_effective_at LIMIT :n FOR UPDATE SKIP LOCKED) AS due "
    f"WHERE v.id = due.id RETURNING due.old_star, due.cause, due.correlation, {PUBLIC_SELECT_OF_V}"
)


async def record_star_change(
    session: AsyncSession, *, change: StarChanged, cause_id: str, correlation_id: str | None, now: datetime | None = None,
) -> bool:
    """Hold a star change (event `cause_id`) until it takes effect, inside the consumer's transaction; False when the volunteer is unknown.

    Only a change announced for a later time than the star in force (or already waiting) is kept, so a change that
    arrives late or twice never brings back an older star; one already due is applied at once.
    """
    now = now or utcnow()
    held = (await session.execute(
        text("UPDATE volunteers SET pending_star = :star, pending_star_effective_at = :at, pending_star_event_id = :cause, "
             "pending_star_correlation = :correlation WHERE id = CAST(:id AS uuid) "
             "AND :at > coalesce(pending_star_effective_at, star_effective_at, '-infinity') RETURNING id"),
        {"star": change.new_star, "at": change.effective_at, "cause": cause_id, "correlation": correlation_id,
         "id": change.volunteer_id},
    )).first()
    if held is None:
        known = (await session.execute(text("SELECT 1 FROM volunteers WHERE id = CAST(:id AS uuid)"), {"id": change.volunteer_id})).first()
        if known is not None:
            log.info("star change %s for %s is older than the one in force or waiting; ignored", cause_id, change.volunteer_id)
        return known is not None
    if change.effective_at <= now:
        await apply_due_stars_in(session, now=now, volunteer_id=change.volunteer_id)
    return True


async def withdraw_star_change(session: AsyncSession, *, withdrawal: StarChangeWithdrawn) -> bool:
    """Drop the waiting star change that rewards withdrew (the one announced for that time); False when the volunteer is unknown.

    A withdrawal for a change no longer waiting (already in force, or replaced by a newer announcement) changes nothing.
    """
    dropped = (await session.execute(
        text("UPDATE volunteers SET pending_star = NULL, pending_star_effective_at = NULL, pending_star_event_id = NULL, "
             "pending_star_correlation = NULL WHERE id = CAST(:id AS uuid) AND pending_star_effective_at = :at RETURNING id"),
        {"id": withdrawal.volunteer_id, "at": withdrawal.withdrawn_effective_at},
    )).first()
    if dropped is not None:
        return True
    known = (await session.execute(text("SELECT 1 FROM volunteers WHERE id = CAST(:id AS uuid)"), {"id": withdrawal.volunteer_id})).first()
    if known is not None:
        log.info("withdrawn star change for %s is no longer waiting; nothing to drop", withdrawal.volunteer_id)
    return known is not None


async def apply_due_stars_in(session: AsyncSession, *, now: datetime, volunteer_id: str | None = None) -> int:
    """Put in force the waiting star changes whose time has come (one volunteer, or a batch); emits the changed states."""
    only = "AND id = CAST(:vid AS uuid)" if volunteer_id else ""
    rows = (await session.execute(
        text(_APPLY_DUE.format(only=only)), {"now": now, "n": APPLY_BATCH, "vid": volunteer_id},
    )).mappings().all()
    events = [
        outbox_row(state_payload(row), subject=str(row["id"]), causation_id=row["cause"], correlation_id=row["correlation"])
        for row in rows if row["old_star"] != row["star"]
    ]
    await enqueue_many(session, events)
    return len(rows)


async def apply_due_stars(*, sessions: Sessions, now: datetime | None = None) -> int:
    """Put in force every waiting star change that is due; returns how many (safe with several replicas)."""
    now = now or utcnow()
    total = 0
    while True:
        async with sessions() as session, session.begin():
            applied = await apply_due_stars_in(session, now=now)
        total += applied
        if applied < APPLY_BATCH:
            return total


async def run_star_applier(
    *, sessions: Sessions, interval_s: float, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Apply due star changes every `interval_s` seconds until cancelled; a failed pass is logged and retried."""
    while True:
        try:
            await apply_due_stars(sessions=sessions)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed pass is retried at the next interval
            log.warning("applying due star changes failed: %s", exc)
        await sleep(interval_s)
