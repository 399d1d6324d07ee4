"""Offer use cases: a volunteer's own assignments, accept, decline, expiry and no-show sweeps, backfill waves, check-in/out,
and staff's bulk work on an operation's offers (list by status, cancel, offer a lost slot again)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.contracts.dispatch import AssignmentAnswered, AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.db import StatementPool, raw_connection
from shouwang_shared.envelope import Cause
from shouwang_shared.errors import Conflict, NotFound, Unprocessable
from shouwang_shared.outbox import OutboxRow, enqueue_many, outbox_row

from dispatch import metrics
from dispatch.access import STAFF_ROLES, ensure_staff_covers, volunteer_id_of
from dispatch.attendance import (
    AUTO_CHECK_OUT_AFTER,
    AttendanceTime,
    Departure,
    HoursApproval,
    attendance_time,
    departure,
    hours_decision,
    hours_served,
    inside_check_in_window,
)
from dispatch.checkin_qr import Verdict, verdict
from dispatch.choices import choose_backfill, nearest_available
from dispatch.fanout import is_below
from dispatch.operations import EMERGENCY_RESPOND_S, operation_or_404, store_offers
from dispatch.planning_inputs import post_for_planner
from dispatch.read_model import planner_volunteers
from dispatch.schemas import (
    AssignmentPublic,
    CheckIn,
    CheckOut,
    OfferPublic,
    OffersCancelCreate,
    OffersCancelledPublic,
    OffersReofferCreate,
    OffersReofferedPublic,
)
from dispatch.solver import AssignmentProblem, haversine_km

log = logging.getLogger(__name__)
Sessions = async_sessionmaker[AsyncSession]

BACKFILL_RADIUS_KM = 30.0
NO_SHOW_GRACE = timedelta(minutes=30)
FILLED_STATUSES = ("accepted", "checked_in", "checked_out")

# What a post's hours were served in (`ServiceHoursRecorded`'s activity fields), from operations `o` and posts `p`.
OPERATION_ACTIVITY = ("'operation' AS activity, o.name AS activity_name, o.kind AS activity_kind, p.name AS place_name,"
                      " o.org_path AS organiser_path")
_SELECT = f"""
SELECT a.*, o.name AS operation_name, o.kind AS operation_kind, p.name AS post_name, p.lat AS post_lat,
       p.lon AS post_lon, p.org_path AS post_org_path, p.geofence_m, p.checkin_code, p.difficulty, p.risk,
       {OPERATION_ACTIVITY}
FROM assignments a JOIN operations o ON o.id = a.operation_id JOIN posts p ON p.id = a.post_id
"""


def _public(row) -> AssignmentPublic:
    return AssignmentPublic(
        id=str(row["id"]), operation_id=str(row["operation_id"]), operation_name=row["operation_name"],
        post_id=str(row["post_id"]), post_name=row["post_name"],
        place={"name": row["post_name"], "lat": row["post_lat"], "lon": row["post_lon"]},
        volunteer_id=row["volunteer_id"], status=row["status"], wave=row["wave"], distance_km=round(row["distance_km"], 3),
        shift_start=row["shift_start"], shift_end=row["shift_end"], offered_at=row["offered_at"],
        respond_by=row["respond_by"], answered_at=row["answered_at"], decline_reason=row["decline_reason"],
        checked_in_at=row["checked_in_at"], checked_out_at=row["checked_out_at"], hours=row["hours"],
        review_reason=row["review_reason"], hours_status=row["hours_status"], hours_decline_reason=row["hours_decline_reason"],
    )


async def _own_assignment(conn, principal: Principal, assignment_id: str, *, lock: bool = False):
    """The caller's assignment; 404 when it does not exist or is someone else's (no hint which)."""
    volunteer_id = volunteer_id_of(principal)
    try:
        uuid.UUID(assignment_id)
    except ValueError:
        raise NotFound("任务不存在 (no such assignment)", field="assignment_id") from None
    row = await conn.fetchrow(_SELECT + " WHERE a.id = $1::uuid" + (" FOR UPDATE OF a" if lock else ""), assignment_id)
    if row is None or row["volunteer_id"] != volunteer_id:
        raise NotFound("任务不存在 (no such assignment)", field="assignment_id")
    return row


def _answer(row, answer: str, at: datetime, reason: str | None = None) -> OutboxRow:
    return outbox_row(AssignmentAnswered(
        assignment_id=str(row["id"]), operation_id=str(row["operation_id"]), post_id=str(row["post_id"]),
        volunteer_id=row["volunteer_id"], answer=answer, reason=reason, at=at,
    ), subject=str(row["id"]), key=row["volunteer_id"])


def _attendance(row, action: str, at: datetime) -> OutboxRow:
    return outbox_row(AssignmentAttendance(
        assignment_id=str(row["id"]), operation_id=str(row["operation_id"]), post_id=str(row["post_id"]),
        volunteer_id=row["volunteer_id"], action=action, at=at,
    ), subject=str(row["id"]), key=row["volunteer_id"])


_MINE = """
SELECT a.id, a.operation_id, o.name AS operation_name, a.post_id, p.name AS post_name, p.lat AS post_lat,
       p.lon AS post_lon, a.volunteer_id, a.status, a.wave, a.distance_km, a.shift_start, a.shift_end, a.offered_at,
       a.respond_by, a.answered_at, a.decline_reason, a.checked_in_at, a.checked_out_at, a.hours, a.review_reason,
       a.hours_status, a.hours_decline_reason
FROM assignments a JOIN operations o ON o.id = a.operation_id JOIN posts p ON p.id = a.post_id
WHERE a.volunteer_id = $1 AND ($2 OR a.shift_end > now()) ORDER BY a.shift_start, a.offered_at
"""


def _public_dict(row) -> dict:
    """An assignment row as the `AssignmentPublic` JSON object (same fields, same order)."""
    return {
        "id": str(row["id"]), "operation_id": str(row["operation_id"]), "operation_name": row["operation_name"],
        "post_id": str(row["post_id"]), "post_name": row["post_name"],
        "place": {"name": row["post_name"], "lat": row["post_lat"], "lon": row["post_lon"]},
        "volunteer_id": row["volunteer_id"], "status": row["status"], "wave": row["wave"],
        "distance_km": round(row["distance_km"], 3), "shift_start": row["shift_start"], "shift_end": row["shift_end"],
        "offered_at": row["offered_at"], "respond_by": row["respond_by"], "answered_at": row["answered_at"],
        "decline_reason": row["decline_reason"], "checked_in_at": row["checked_in_at"],
        "checked_out_at": row["checked_out_at"], "hours": row["hours"], "review_reason": row["review_reason"],
        "hours_status": row["hours_status"], "hours_decline_reason": row["hours_decline_reason"],
    }


async def my_assignments_json(*, statements: StatementPool, principal: Principal, include_past: bool = False) -> bytes:
    """The caller's own assignments, soonest first, as a JSON array of `AssignmentPublic` (the hot read: one statement, one round trip)."""
    rows = await statements.fetch(_MINE, volunteer_id_of(principal), include_past)
    return orjson.dumps([_public_dict(r) for r in rows], option=orjson.OPT_UTC_Z)


async def get_assignment(*, sessions: Sessions, principal: Principal, assignment_id: str) -> AssignmentPublic:
    """One assignment: its volunteer, or staff whose scope covers its post."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        if principal.role == Role.VOLUNTEER:
            return _public(await _own_assignment(conn, principal, assignment_id))
        try:
            uuid.UUID(assignment_id)
        except ValueError:
            raise NotFound("任务不存在 (no such assignment)", field="assignment_id") from None
        row = await conn.fetchrow(_SELECT + " WHERE a.id = $1::uuid", assignment_id)
        if row is None:
            raise NotFound("任务不存在 (no such assignment)", field="assignment_id")
        ensure_staff_covers(principal, row["post_org_path"])
        return _public(row)


async def accept_offer(*, sessions: Sessions, principal: Principal, assignment_id: str) -> AssignmentPublic:
    """The volunteer takes the offered shift."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _own_assignment(conn, principal, assignment_id, lock=True)
        now = datetime.now(UTC)
        if row["status"] == "accepted":
            return _public(row)
        if row["status"] != "offered":
            raise Conflict(f"任务状态为 {row['status']}，不能接受 (cannot accept an assignment that is {row['status']})", field="status")
        if row["respond_by"] <= now:
            raise Conflict("邀请已过期 (the offer has expired)", field="respond_by")
        clash = await conn.fetchval(
            "SELECT 1 FROM assignments WHERE volunteer_id = $1 AND id <> $2 AND status IN ('accepted', 'checked_in')"
            " AND shift_start < $4 AND shift_end > $3 LIMIT 1",
            row["volunteer_id"], row["id"], row["shift_start"], row["shift_end"],
        )
        if clash:
            raise Conflict("与已接受的班次时间冲突 (overlaps a shift you already accepted)", field="shift_start")
        try:  # the database refuses an overlap with a confirmed project shift (volunteer_commitments), even under a race
            await conn.execute("UPDATE assignments SET status = 'accepted', answered_at = $2 WHERE id = $1", row["id"], now)
        except asyncpg.ExclusionViolationError:
            raise Conflict("与已确认的其他任务时间冲突 (overlaps another commitment of yours)", field="shift_start", code="double_booked") from None
        await conn.execute("UPDATE volunteers SET accepted = accepted + 1 WHERE volunteer_id = $1", row["volunteer_id"])
        await enqueue_many(session, [_answer(row, "accepted", now)])
        return _public(await conn.fetchrow(_SELECT + " WHERE a.id = $1", row["id"]))


async def decline_offer(*, sessions: Sessions, principal: Principal, assignment_id: str, reason: str) -> AssignmentPublic:
    """The volunteer declines (or withdraws from an accepted shift) with a reason; a backfill wave follows."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _own_assignment(conn, principal, assignment_id, lock=True)
        if row["status"] == "declined":  # a repeated decline (a phone's retry) answers as the first did
            return _public(row)
        if row["status"] not in ("offered", "accepted"):
            raise Conflict(f"任务状态为 {row['status']}，不能拒绝 (cannot decline an assignment that is {row['status']})", field="status")
        now = datetime.now(UTC)
        await conn.execute(
            "UPDATE assignments SET status = 'declined', answered_at = $2, decline_reason = $3 WHERE id = $1", row["id"], now, reason
        )
        await conn.execute("UPDATE volunteers SET declined = declined + 1 WHERE volunteer_id = $1", row["volunteer_id"])
        await enqueue_many(session, [_answer(row, "declined", now, reason)])
        await backfill_posts(session, {row["post_id"]})
        return _public(await conn.fetchrow(_SELECT + " WHERE a.id = $1", row["id"]))


async def backfill_posts(session: AsyncSession, post_ids: set, *, caused_by: Cause | None = None) -> int:
    """Offer each short post to more volunteers: the next nearest (emergency), or reserve and nearby ones by reliability."""
    conn = await raw_connection(session)
    now = datetime.now(UTC)
    sent = 0
    for post_id in sorted(post_ids, key=str):
        post = await conn.fetchrow(
            "SELECT p.*, o.kind, o.status AS operation_status, o.name AS operation_name, o.respond_within_s"
            " FROM posts p JOIN operations o ON o.id = p.operation_id WHERE p.id = $1"
            " FOR UPDATE OF o",  # backfills of one operation take turns: nobody is offered twice in it
            post_id,
        )
        if post is None or post["operation_status"] != "running" or post["shift_end"] <= now:
            continue
        held = await conn.fetch(
            "SELECT a.volunteer_id, a.status, a.wave"
            " FROM assignments a WHERE a.operation_id = $1 AND a.post_id = $2",
            post["operation_id"], post_id,
        )
        filled = sum(1 for h in held if h["status"] in FILLED_STATUSES)
        pending = [h for h in held if h["status"] == "offered"]
        volunteers = await planner_volunteers(
            conn, window_start=post["shift_start"], window_end=post["shift_end"],
            near=(post["lat"], post["lon"], BACKFILL_RADIUS_KM),
        )
        if not volunteers:
            continue
        problem = AssignmentProblem(volunteers, [post_for_planner(post)])
        in_operation = {
            r["volunteer_id"] for r in await conn.fetch("SELECT volunteer_id FROM assignments WHERE operation_id = $1", post["operation_id"])
        }
        exclude = np.array([v.id in in_operation for v in volunteers], dtype=bool)
        if post["kind"] == "emergency":
            chosen = nearest_available(problem, 0, count=max(0, post["headcount"] - filled - len(pending)), exclude=exclude)
        else:
            index = {v.id: i for i, v in enumerate(volunteers)}
            expected = sum(problem.v_reliability[index[h["volunteer_id"]]] if h["volunteer_id"] in index else 0.5 for h in pending)
            short = post["headcount"] - filled - expected
            chosen = choose_backfill(problem, 0, expected_short=short, exclude=exclude) if short >= 0.5 else np.empty(0, np.int64)
        if len(chosen) == 0:
            continue
        wave = max((h["wave"] for h in held), default=0) + 1
        respond_s = EMERGENCY_RESPOND_S if post["kind"] == "emergency" else post["respond_within_s"]
        respond_by = min(now + timedelta(seconds=respond_s), post["shift_end"])
        distance = problem.distance_km(chosen, np.zeros(len(chosen), np.int64))
        rows = [
            (uuid.uuid4(), post["operation_id"], post_id, volunteers[v].id, "offered", wave, float(d),
             post["shift_start"], post["shift_end"], now, respond_by)
            for v, d in zip(chosen.tolist(), distance.tolist(), strict=True)
        ]
        operation = {"id": post["operation_id"], "name": post["operation_name"]}
        await store_offers(session, rows, {post_id: post}, operation, caused_by)
        metrics.BACKFILL_OFFERS.labels(post["kind"]).inc(len(rows))
        sent += len(rows)
    return sent


CANCELLABLE = ("offered", "accepted")
REOFFERABLE = ("declined", "expired", "cancelled", "no_show")


async def _operation_in_view(conn, principal: Principal, operation_id: str, *, lock: bool = False):
    """The operation, when the caller's scope covers it or lies inside it (a station under a town's operation); else 403."""
    operation = await operation_or_404(conn, operation_id, lock=lock)
    scope = principal.scope_path
    inside = principal.role in STAFF_ROLES and scope is not None and is_below(scope, operation["org_path"])
    if not inside:
        ensure_staff_covers(principal, operation["org_path"], field="operation_id")
    return operation


async def operation_offers(
    *, sessions: Sessions, principal: Principal, operation_id: str, status: str | None, limit: int, offset: int
) -> list[OfferPublic]:
    """An operation's offers at posts in the caller's scope, optionally of one status, in offer order, a page at a time."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        operation = await _operation_in_view(conn, principal, operation_id)
        scope = None if principal.role == Role.OPERATOR or principal.covers(operation["org_path"]) else principal.scope_path
        rows = await conn.fetch(
            _SELECT + " WHERE a.operation_id = $1 AND ($2::text IS NULL OR a.status = $2)"
            " AND ($3::text IS NULL OR p.org_path = $3 OR p.org_path LIKE $4)"
            " ORDER BY a.offered_at, a.id LIMIT $5 OFFSET $6",
            operation["id"], status, scope, f"{scope.rstrip('/')}/%" if scope else None, limit, offset,
        )
    return [OfferPublic(**_public(r).model_dump(), reoffered_at=r["reoffered_at"]) for r in rows]


async def _offers_locked(conn, principal: Principal, operation, assignment_ids: list[str]) -> list:
    """The named assignments of `operation`, locked in id order; 404 / 403 naming `assignment_ids` unless all exist here in scope."""
    try:
        ids = sorted({uuid.UUID(i) for i in assignment_ids})
    except ValueError:
        raise NotFound("任务不存在 (no such assignment)", field="assignment_ids") from None
    rows = await conn.fetch(_SELECT + " WHERE a.id = ANY($1::uuid[]) AND a.operation_id = $2 ORDER BY a.id FOR UPDATE OF a", ids, operation["id"])
    if len(rows) != len(ids):
        raise NotFound("任务不存在或不属于该行动 (no such assignment in this operation)", field="assignment_ids")
    for row in rows:
        ensure_staff_covers(principal, row["post_org_path"], field="assignment_ids")
    return rows


def _refuse_unless(rows, allowed: tuple[str, ...], done, action: str) -> None:
    """409 naming `assignment_ids` when a row is neither in an `allowed` status nor already `done`."""
    stuck = [r for r in rows if r["status"] not in allowed and not done(r)]
    if stuck:
        raise Conflict(f"任务状态不允许{action} (cannot {action} these): "
                       + ", ".join(f"{r['id']}={r['status']}" for r in stuck[:5]), field="assignment_ids")


async def cancel_offers(*, sessions: Sessions, principal: Principal, operation_id: str, body: OffersCancelCreate) -> OffersCancelledPublic:
    """Staff cancel offered or accepted shifts with a reason; each volunteer is told once (`AssignmentAnswered` cancelled).

    All or nothing; offers cancelled before are reported and left alone, so a repeated request tells nobody twice.
    The volunteer's counters do not change: the cancellation is staff's doing, not theirs.
    """
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        operation = await _operation_in_view(conn, principal, operation_id)
        rows = await _offers_locked(conn, principal, operation, body.assignment_ids)
        _refuse_unless(rows, CANCELLABLE, lambda r: r["status"] == "cancelled", "取消")
        cancelling = [r for r in rows if r["status"] in CANCELLABLE]
        now = datetime.now(UTC)
        if cancelling:
            await conn.execute(
                "UPDATE assignments SET status = 'cancelled', answered_at = $2, decline_reason = $3, cancelled_by = $4"
                " WHERE id = ANY($1::uuid[])",
                [r["id"] for r in cancelling], now, body.reason, principal.sub,
            )
            await enqueue_many(session, [_answer(r, "cancelled", now, body.reason) for r in cancelling])
    return OffersCancelledPublic(cancelled=[str(r["id"]) for r in cancelling],
                           already_cancelled=[str(r["id"]) for r in rows if r["status"] == "cancelled"])


async def reoffer_slots(*, sessions: Sessions, principal: Principal, operation_id: str, body: OffersReofferCreate) -> OffersReofferedPublic:
    """Staff have the slots of lost offers (declined, expired, cancelled, no-show) offered again: a backfill wave at each
    post (`backfill_posts`, the planner's choice of who is next), in one transaction with its outbox rows.

    A slot offered again before is reported and left alone, so a repeated request offers nobody twice; a post the wave
    cannot fill (full again, or nobody in reach is free) leaves its slots `not_refilled`, to try later.
    """
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        operation = await _operation_in_view(conn, principal, operation_id)
        if operation["status"] != "running":
            raise Conflict(f"行动状态为 {operation['status']}，不能重新派发 (only a running operation's slots can be offered again)", field="status")
        rows = await _offers_locked(conn, principal, operation, body.assignment_ids)
        _refuse_unless(rows, REOFFERABLE, lambda r: r["reoffered_at"] is not None, "重新派发")
        waiting = [r for r in rows if r["reoffered_at"] is None]
        by_post: dict = {}
        for row in waiting:
            by_post.setdefault(row["post_id"], []).append(row)
        refilled, sent = [], 0
        for post_id, slots in sorted(by_post.items(), key=lambda item: str(item[0])):
            offered = await backfill_posts(session, {post_id})
            if offered:
                sent += offered
                refilled += slots
        if refilled:
            await conn.execute("UPDATE assignments SET reoffered_at = $2 WHERE id = ANY($1::uuid[])", [r["id"] for r in refilled], datetime.now(UTC))
    return OffersReofferedPublic(
        reoffered=[str(r["id"]) for r in refilled], already_reoffered=[str(r["id"]) for r in rows if r["reoffered_at"] is not None],
        not_refilled=[str(r["id"]) for r in waiting if r not in refilled], offers_sent=sent,
    )


# Overdue assignments a sweep takes over: $1 the cut-off time, $2 at most how many; they come back with their volunteer.
OVERDUE_OFFERS_EXPIRED = (
    "UPDATE assignments SET status = 'expired', answered_at = $1 WHERE id IN ("
    " SELECT id FROM assignments WHERE status = 'offered' AND respond_by <= $1 ORDER BY respond_by LIMIT $2"
    " FOR UPDATE SKIP LOCKED) RETURNING id, operation_id, post_id, volunteer_id"
)
UNATTENDED_SHIFTS_MARKED_NO_SHOW = (
    "UPDATE assignments SET status = 'no_show' WHERE id IN ("
    " SELECT id FROM assignments WHERE status = 'accepted' AND shift_start <= $1 ORDER BY shift_start LIMIT $2"
    " FOR UPDATE SKIP LOCKED) RETURNING id, operation_id, post_id, volunteer_id"
)
VOLUNTEER_COUNTERS = {"expired": "expired", "no_show": "no_shows"}


async def _sweep(sessions: Sessions, *, statement: str, cutoff: datetime, limit: int, outcome: str, announce) -> int:
    """Run one sweep `statement` in a transaction: count the outcome on each volunteer, announce it, backfill the posts."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        rows = await conn.fetch(statement, cutoff, limit)
        if not rows:
            return 0
        column = VOLUNTEER_COUNTERS[outcome]
        await conn.execute(
            f"UPDATE volunteers SET {column} = {column} + 1 WHERE volunteer_id = ANY($1::text[])", [r["volunteer_id"] for r in rows]
        )
        await enqueue_many(session, [announce(r) for r in rows])
        await backfill_posts(session, {r["post_id"] for r in rows})
    return len(rows)


async def expire_overdue_offers(*, sessions: Sessions, now: datetime | None = None, limit: int = 5000) -> int:
    """Sweep: offers past `respond_by` expire, and their posts get backfill waves."""
    now = now or datetime.now(UTC)
    return await _sweep(sessions, statement=OVERDUE_OFFERS_EXPIRED, cutoff=now, limit=limit, outcome="expired",
                        announce=lambda r: _answer(r, "expired", now))


async def mark_no_shows(*, sessions: Sessions, now: datetime | None = None, limit: int = 5000) -> int:
    """Sweep: accepted shifts not checked in by start + grace become no-shows, and their posts get backfill waves."""
    now = now or datetime.now(UTC)
    return await _sweep(sessions, statement=UNATTENDED_SHIFTS_MARKED_NO_SHOW, cutoff=now - NO_SHOW_GRACE, limit=limit,
                        outcome="no_show", announce=lambda r: _attendance(r, "no_show", now))


async def check_in(*, sessions: Sessions, principal: Principal, assignment_id: str, proof: CheckIn) -> AssignmentPublic:
    """The volunteer arrives at the post: the post's QR token, or a position inside its geofence (at the phone's time if offline)."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _own_assignment(conn, principal, assignment_id, lock=True)
        if row["status"] == "checked_in":
            return _public(row)
        missed = row["status"] == "no_show" and proof.at is not None  # arrived offline, so the sweep could not know
        if row["status"] != "accepted" and not missed:
            raise Conflict(f"任务状态为 {row['status']}，不能签到 (cannot check in to an assignment that is {row['status']})", field="status")
        when = arrival(row, proof, received=datetime.now(UTC))
        await conn.execute(
            "UPDATE assignments SET status = 'checked_in', checked_in_at = $2, review_reason = $3 WHERE id = $1", row["id"], when.at, when.review
        )
        await conn.execute(
            "UPDATE volunteers SET shows = shows + 1, no_shows = no_shows - $2 WHERE volunteer_id = $1", row["volunteer_id"], int(missed)
        )
        await enqueue_many(session, [_attendance(row, "checked_in", when.at)])
        return _public(await conn.fetchrow(_SELECT + " WHERE a.id = $1", row["id"]))


def arrival(place, proof: CheckIn, *, received: datetime) -> AttendanceTime:
    """When a check-in at `place` counts and what it leaves for review (joined reasons); 422 outside the check-in window
    of the place's shift (`shift_start`, `shift_end`) or for a proof that proves nothing (see `presence_review`)."""
    when = attendance_time(device_at=proof.at, received_at=received, shift_end=place["shift_end"])
    if not inside_check_in_window(when.at, shift_start=place["shift_start"], shift_end=place["shift_end"]):
        raise Unprocessable("不在签到时间内 (outside the check-in window of the shift)", field="at" if proof.at else "shift_start")
    review = presence_review(place, proof, at=when.at, now=received)
    return AttendanceTime(when.at, ",".join(r for r in (when.review, *review) if r) or None)


def presence_review(row, proof: CheckIn, *, at: datetime, now: datetime) -> list[str]:
    """What a check-in's proof of presence leaves for staff to review; 422 for a proof that proves nothing.

    A QR token of this post proves presence: a stale one (an old step, another shift) is flagged `stale_qr`, and a
    position sent with it outside the geofence is flagged `far_from_post`. A token of another post, or not ours, is
    refused. Without a token the position is the only proof, so outside the geofence it is refused.
    """
    away_m = None
    if proof.lat is not None and proof.lon is not None:
        away_m = float(haversine_km(proof.lat, proof.lon, row["post_lat"], row["post_lon"])) * 1000
    if proof.qr_token is None:
        if away_m is not None and away_m > row["geofence_m"]:
            raise Unprocessable(f"距岗位 {away_m:.0f} 米，超出 {row['geofence_m']} 米签到范围 (too far from the post to check in)", field="lat")
        return []
    judged = verdict(proof.qr_token, post_id=str(row["post_id"]), secret=row["checkin_code"], at=at, now=now, shift_start=row["shift_start"])
    if judged is Verdict.OTHER_POST:
        raise Unprocessable("二维码属于另一个岗位 (the QR code is another post's)", field="qr_token")
    if judged is Verdict.INVALID:
        raise Unprocessable("二维码无效 (not a check-in QR code of ours)", field="qr_token")
    reasons = ["stale_qr"] if judged is Verdict.STALE else []
    if away_m is not None and away_m > row["geofence_m"]:
        reasons.append("far_from_post")
    return reasons


async def check_out(
    *, sessions: Sessions, principal: Principal, assignment_id: str, leaving: CheckOut, approval: HoursApproval
) -> AssignmentPublic:
    """The volunteer leaves the post (at the phone's time if offline): the hours served are recorded, for approval under `approval`."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _own_assignment(conn, principal, assignment_id, lock=True)
        if row["status"] == "checked_out":
            return _public(row)
        if row["status"] != "checked_in":
            raise Conflict(f"任务状态为 {row['status']}，不能签退 (cannot check out of an assignment that is {row['status']})", field="status")
        left, approved = await record_departure(conn, "assignments", row, leaving, approval)
        await enqueue_many(session, [_attendance(row, "checked_out", left.at), *approved])
        return _public(await conn.fetchrow(_SELECT + " WHERE a.id = $1", row["id"]))


def _checked_out_status(table: str) -> str:
    """The SET fragment that marks a row checked out: an assignment changes status, a shift sign-up stays confirmed."""
    return "status = 'checked_out', " if table == "assignments" else ""


async def record_departure(
    conn, table: str, row, leaving: CheckOut, approval: HoursApproval
) -> tuple[Departure, list[OutboxRow]]:
    """Record a check-out on `row` of `table` (assignments or shift_signups, with shift_start/shift_end aliases): the
    hours, the review reason and their decision (`hours_decision` under `approval`); returns the departure and the
    `ServiceHoursRecorded` outbox item when the hours are approved by rule (pending hours wait for a station admin,
    dispatch.hours_approval)."""
    left = departure(device_at=leaving.at, received_at=datetime.now(UTC), checked_in_at=row["checked_in_at"],
                     prior_review=row["review_reason"], shift_start=row["shift_start"], shift_end=row["shift_end"])
    status, decided_by, decided_at = hours_decision(flagged=left.flagged, at=left.at, approval=approval)
    await conn.execute(
        f"UPDATE {table} SET {_checked_out_status(table)}checked_out_at = $2, hours = $3, review_reason = coalesce(review_reason, $4),"
        " hours_status = $5, hours_decided_by = $6, hours_decided_at = $7 WHERE id = $1",
        row["id"], left.at, left.hours, left.review, status, decided_by, decided_at,
    )
    if status != "approved":
        return left, []
    org_path = await conn.fetchval("SELECT org_path FROM volunteers WHERE volunteer_id = $1", row["volunteer_id"])
    return left, [hours_recorded(row, left.hours, left.started, left.ended, org_path)]


def hours_recorded(row, hours: float, started: datetime, ended: datetime, org_path: str | None) -> OutboxRow:
    """The `ServiceHoursRecorded` of an assignment's approved hours (one record per assignment, whoever approved them)."""
    return outbox_row(ServiceHoursRecorded(
        record_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"shouwang:dispatch:hours:{row['id']}")),
        assignment_id=str(row["id"]), volunteer_id=row["volunteer_id"], operation_id=str(row["operation_id"]),
        post_id=str(row["post_id"]), hours=hours, difficulty=row["difficulty"], risk=row["risk"],
        started_at=started, ended_at=ended, org_path=org_path, activity=row["activity"], activity_name=row["activity_name"],
        activity_kind=row["activity_kind"], place_name=row["place_name"], organiser_path=row["organiser_path"],
    ), subject=str(row["id"]), key=row["volunteer_id"])


# Assignments still checked in at their shift's end + the bound ($1 = now − bound), at most $2, locked for this sweep.
FORGOTTEN_CHECK_OUTS = (
    "SELECT id FROM assignments WHERE status = 'checked_in' AND shift_end <= $1 ORDER BY shift_end LIMIT $2 FOR UPDATE SKIP LOCKED"
)


async def auto_check_out(*, sessions: Sessions, now: datetime | None = None, limit: int = 5000) -> int:
    """Sweep: volunteers still checked in AUTO_CHECK_OUT_AFTER past their shift's end are checked out at the shift's end,
    flagged `auto_checkout`; their hours wait for a station admin's approval."""
    now = now or datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        closed = await close_forgotten_check_ins(conn, "assignments", FORGOTTEN_CHECK_OUTS, _SELECT + " WHERE a.id = ANY($1::uuid[])",
                                                 now=now, limit=limit)
        await enqueue_many(session, [_attendance(row, "checked_out", ended) for row, ended in closed])
    return len(closed)


async def close_forgotten_check_ins(conn, table: str, forgotten: str, load: str, *, now: datetime, limit: int) -> list[tuple]:
    """The sweep's work on `table`: lock at most `limit` check-ins still open AUTO_CHECK_OUT_AFTER past their shift's end
    (`forgotten`: $1 that bound, $2 the limit), load them (`load`, $1 their ids) and close them (`close_forgotten`)."""
    ids = [r["id"] for r in await conn.fetch(forgotten, now - AUTO_CHECK_OUT_AFTER, limit)]
    return await close_forgotten(conn, table, await conn.fetch(load, ids)) if ids else []


async def close_forgotten(conn, table: str, rows) -> list[tuple]:
    """Check out `rows` of `table` (assignments or shift_signups, with shift_start/shift_end aliases) at their shift's end,
    flagged `auto_checkout`, hours pending (flagged hours are, under either HOURS_APPROVAL); (row, checked-out time) of each."""
    served = [(row, *hours_served(checked_in_at=row["checked_in_at"], checked_out_at=row["shift_end"],
                                  shift_start=row["shift_start"], shift_end=row["shift_end"])) for row in rows]
    await conn.execute(
        f"UPDATE {table} AS a SET {_checked_out_status(table)}checked_out_at = u.ended, hours = u.hours,"
        " review_reason = concat_ws(',', a.review_reason, 'auto_checkout'), hours_status = 'pending'"
        " FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[]) AS u(id, ended, hours) WHERE a.id = u.id",
        [r["id"] for r, *_ in served], [max(r["checked_in_at"], ended) for r, _, ended, _ in served], [h for *_, h in served],
    )
    return [(row, max(row["checked_in_at"], ended)) for row, _, ended, _ in served]
