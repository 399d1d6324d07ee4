"""The on-duty roster and urgent-case alerts: who is on duty where, the push when a case becomes urgent, and the
escalation one level up when nobody claims it in time."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.intel import UrgentCaseAlert
from shouwang_shared.errors import Unprocessable, id_or_404
from shouwang_shared.outbox import enqueue

from intel.access import ensure_in_scope, found_in_scope
from intel.cases import duty
from intel.cases.history import SYSTEM, note_in_history
from intel.schemas import DutyShiftCreate

log = logging.getLogger(__name__)

MAX_SHIFT = timedelta(days=31)
URGENT_ALERTS = Counter(
    "shouwang_intel_urgent_alerts_total", "Urgent-case alerts: raised to the case's scope, escalated a level up, or nobody on duty",
    ["outcome"],
)
UNCLAIMED = Gauge("shouwang_intel_urgent_cases_unclaimed", "Urgent cases waiting for an analyst to claim them")
OLDEST_UNCLAIMED = Gauge(
    "shouwang_intel_urgent_case_oldest_unclaimed_seconds", "How long the oldest unclaimed urgent case has waited since its alert (0: none)"
)

_ON_DUTY = text(
    "SELECT org_path, staff_sub FROM duty_roster WHERE org_path = ANY(CAST(:levels AS text[])) AND starts_at <= :now AND ends_at > :now"
)
# Unclaimed alerts whose case someone took up (claimed, triaged, verified, ...: a person's entry in the case history since
# the alert), or that was merged into another case, closed or rejected: claimed at that time, by that person.
_MARK_CLAIMED = text("""
UPDATE urgent_alerts a SET claimed_at = coalesce(h.at, :now), claimed_by = coalesce(h.actor, 'case:' || c.status)
FROM cases c LEFT JOIN LATERAL (
    SELECT at, actor FROM case_history h WHERE h.case_id = c.id AND h.actor <> 'system' AND h.actor NOT LIKE '/%'
      AND h.at >= (SELECT raised_at FROM urgent_alerts WHERE case_id = c.id) ORDER BY h.id LIMIT 1
) h ON TRUE
WHERE c.id = a.case_id AND a.claimed_at IS NULL
  AND (h.at IS NOT NULL OR c.merged_into IS NOT NULL OR c.status IN ('closed', 'rejected'))
""")
_OVERDUE = text("""
SELECT a.case_id, a.case_org_path, a.alerted_path, a.level, jsonb_array_length(a.recipients) AS reached, c.reference, c.category
FROM urgent_alerts a JOIN cases c ON c.id = a.case_id
WHERE a.claimed_at IS NULL AND a.due_at <= :now ORDER BY a.due_at LIMIT :n FOR UPDATE OF a SKIP LOCKED
""")
_NOBODY_REACHED = text("UPDATE urgent_alerts SET level = greatest(level, 0), due_at = :due WHERE case_id = :case_id")
_ALERTED = text(
    "UPDATE urgent_alerts SET alerted_path = :path, level = :level, recipients = CAST(:recipients AS jsonb), due_at = :due WHERE case_id = :case_id"
)
# Queued once per case (the sweep sends it): the alert starts below the case's own level, due at once.
_OPEN_ALERT = text(
    "INSERT INTO urgent_alerts (case_id, case_org_path, alerted_path, level, raised_at, due_at)"
    " SELECT id, org_path, org_path, -1, :now, :now FROM cases WHERE id = :case_id ON CONFLICT (case_id) DO NOTHING"
)
_UNCLAIMED = text(
    "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(raised_at)), 0) AS oldest FROM urgent_alerts WHERE claimed_at IS NULL"
)
_SHIFT_COLUMNS = "id, staff_sub, org_path, starts_at, ends_at, created_by"


async def _on_duty(session: AsyncSession, levels: list[str], now: datetime) -> dict[str, list[str]]:
    """Who is on duty at `now`, by org path, for each of `levels`."""
    on_duty: dict[str, list[str]] = {}
    for r in await session.execute(_ON_DUTY, {"levels": levels, "now": now}):
        on_duty.setdefault(r.org_path, []).append(r.staff_sub)
    return on_duty


async def _announce(
    session: AsyncSession, *, case_id, reference: str, category: str, case_org_path: str, target: duty.AlertTarget,
    escalated: bool, now: datetime, due: datetime,
) -> None:
    """Write `UrgentCaseAlert` to the outbox in the caller's transaction."""
    payload = UrgentCaseAlert(
        alert_id=str(uuid.uuid4()), case_id=str(case_id), reference=reference, category=category, case_org_path=case_org_path,
        alerted_org_path=target.org_path, level=target.level, escalated=escalated, recipients=list(target.recipients),
        raised_at=now, claim_due_at=due,
    )
    await enqueue(session, payload, subject=str(case_id))


async def open_urgent_alert(session: AsyncSession, *, case_id, now: datetime) -> None:
    """A case just became urgent: queue its alert in the caller's transaction (once per case); the sweep sends it within a round."""
    await session.execute(_OPEN_ALERT, {"case_id": case_id, "now": now})


async def send_urgent_alerts(*, sessions: async_sessionmaker[AsyncSession], claim_sla_s: float, limit: int = 100) -> int:
    """Alert the on-duty staff of new urgent cases, mark those someone took up as claimed, and alert one level up for each
    whose claim is overdue. Returns how many alerts went out.

    A new alert goes to the case's own scope, or the nearest scope above it with someone on duty. An alert that reached
    nobody is tried again from its own level after each SLA; one already at the top stays there (the
    `ShouwangUrgentCaseUnclaimed` alert then calls a person). Replicas share the rows (`SKIP LOCKED`).
    """
    now = datetime.now(UTC)
    sent: list[str] = []
    async with sessions() as session, session.begin():
        await session.execute(_MARK_CLAIMED, {"now": now})
        for r in (await session.execute(_OVERDUE, {"now": now, "n": limit})).all():
            levels = duty.scope_levels(r.case_org_path)
            first = r.level < 0
            reached_someone = r.reached > 0
            from_level = 0 if first else r.level + (1 if reached_someone else 0)
            target = duty.first_staffed(levels, await _on_duty(session, levels, now), from_level=from_level)
            due = now + timedelta(seconds=claim_sla_s)
            if target is None:  # nobody on duty (above): wait another SLA and look again; the alert rule is firing meanwhile
                if first:
                    sent.append("nobody_on_duty")
                    log.warning("urgent case %s: nobody on duty for %s or above", r.reference, r.case_org_path)
                await session.execute(_NOBODY_REACHED, {"case_id": r.case_id, "due": due})
                continue
            await session.execute(
                _ALERTED,
                {"case_id": r.case_id, "path": target.org_path, "level": target.level,
                 "recipients": orjson.dumps(list(target.recipients)).decode(), "due": due},
            )
            escalated = not first and reached_someone
            await note_in_history(
                session, r.case_id, "urgent_escalated" if escalated else "urgent_alert_sent", SYSTEM,
                {"alerted_org_path": target.org_path, "level": target.level, "recipients": list(target.recipients)}, now,
            )
            await _announce(session, case_id=r.case_id, reference=r.reference, category=r.category, case_org_path=r.case_org_path,
                            target=target, escalated=escalated, now=now, due=due)
            sent.append("escalated" if escalated else "raised")
    for outcome in sent:
        URGENT_ALERTS.labels(outcome).inc()
    return sum(1 for o in sent if o != "nobody_on_duty")


async def refresh_unclaimed_gauges(*, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Set the gauges the `ShouwangUrgentCaseUnclaimed` alert reads: how many urgent cases wait unclaimed, and the oldest's wait."""
    async with sessions() as session:
        row = (await session.execute(_UNCLAIMED)).one()
    UNCLAIMED.set(row.n)
    OLDEST_UNCLAIMED.set(float(row.oldest))


def _shift(r) -> dict:
    return {"shift_id": str(r.id), "staff_sub": r.staff_sub, "org_path": r.org_path, "starts_at": r.starts_at.isoformat(),
            "ends_at": r.ends_at.isoformat(), "created_by": r.created_by}


async def add_shift(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, body: DutyShiftCreate) -> dict:
    """Put an analyst on duty for an org scope inside the principal's scope, from `starts_at` to `ends_at`."""
    ensure_in_scope(principal, body.org_path)
    if body.ends_at <= body.starts_at:
        raise Unprocessable("结束时间必须晚于开始时间", field="ends_at")
    if body.ends_at - body.starts_at > MAX_SHIFT:
        raise Unprocessable("一次排班最长 31 天", field="ends_at")
    async with sessions() as session, session.begin():
        row = (await session.execute(
            text(
                f"INSERT INTO duty_roster ({_SHIFT_COLUMNS}) VALUES (:id, :sub, :path, :s, :e, :by) RETURNING {_SHIFT_COLUMNS}"
            ),
            {"id": uuid.uuid4(), "sub": body.staff_sub, "path": body.org_path.rstrip("/") or "/", "s": body.starts_at, "e": body.ends_at,
             "by": principal.sub},
        )).one()
    return _shift(row)


async def list_shifts(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, at: datetime | None, org_path: str | None, limit: int = 200
) -> list[dict]:
    """Shifts in the principal's scope, by start; those on duty at `at` when given, else those not yet over."""
    clauses, params = ["ends_at > :after"], {"after": at or datetime.now(UTC), "n": limit}
    if at is not None:
        clauses.append("starts_at <= :at")
        params["at"] = at
    if org_path:
        clauses.append("org_path = :path")
        params["path"] = org_path.rstrip("/") or "/"
    async with sessions() as session:
        rows = (await session.execute(
            text(f"SELECT {_SHIFT_COLUMNS} FROM duty_roster WHERE {' AND '.join(clauses)}"
                 " ORDER BY starts_at, org_path LIMIT :n"),
            params,
        )).all()
    return [_shift(r) for r in rows if principal.covers(r.org_path)]


async def remove_shift(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, shift_id: str) -> None:
    """Take a shift off the roster (404 outside the principal's scope)."""
    sid = id_or_404(shift_id, field="shift_id", message="排班不存在")
    async with sessions() as session, session.begin():
        row = (await session.execute(text("SELECT org_path FROM duty_roster WHERE id = :id FOR UPDATE"), {"id": sid})).first()
        found_in_scope(principal, row, field="shift_id", message="排班不存在")
        await session.execute(text("DELETE FROM duty_roster WHERE id = :id"), {"id": sid})
