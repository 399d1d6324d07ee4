"""Sign-up use cases: a volunteer takes one shift or the series, cancels, is promoted from the waitlist; staff confirm.

A confirmed sign-up is a commitment: a trigger puts it into `volunteer_commitments`, whose exclusion constraint refuses
two overlapping windows of one volunteer (project shifts and accepted operation assignments alike). Each attempt runs
under a savepoint, so a refused one is answered 409 naming the clash (or skipped in a series) without undoing the rest.
Every state change is an outbox event (`ShiftSignupChanged`); the gateway tells a promoted volunteer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.dispatch import Place, ShiftSignupChanged
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shouwang_shared.outbox import OutboxRow, enqueue_many, outbox_row

from dispatch.access import ensure_staff_covers, volunteer_id_of
from dispatch.projects.schemas import ProjectPlace, SeriesSignupPublic, ShiftPublic, SignupPublic
from dispatch.solver import haversine_km

Sessions = async_sessionmaker[AsyncSession]
ACTIVE = ("applied", "confirmed", "waitlisted")
OPEN_SHIFTS_LIMIT = 200

_SHIFT = """
SELECT s.*, p.name AS project_name, p.kind, p.places, p.org_path, p.status AS project_status, p.needs_approval,
       p.required_skills, p.required_teams
FROM project_shifts s JOIN projects p ON p.id = s.project_id
"""
_SIGNUP = """
SELECT g.*, p.name AS project_name, p.places, s.place_no FROM shift_signups g
JOIN projects p ON p.id = g.project_id JOIN project_shifts s ON s.id = g.shift_id
"""


class DoubleBooked(Conflict):
    """The volunteer already holds a commitment overlapping this window."""

    code = "double_booked"


def places_of(row) -> list[dict]:
    """A project's places as stored (a list of name/lat/lon)."""
    places = row["places"]
    return orjson.loads(places) if isinstance(places, (str, bytes)) else places


SHIFTS_WITH_COUNTS = """
SELECT s.*, p.name AS project_name, p.kind, p.places,
       count(*) FILTER (WHERE g.status = 'confirmed') AS confirmed,
       count(*) FILTER (WHERE g.status = 'waitlisted') AS waitlisted,
       count(*) FILTER (WHERE g.status = 'applied') AS applied
FROM project_shifts s JOIN projects p ON p.id = s.project_id LEFT JOIN shift_signups g ON g.shift_id = s.id
"""


def shift_public(row, distance_km: float | None = None) -> ShiftPublic:
    """A shift row with its sign-up counts as the API shows it."""
    place = places_of(row)[row["place_no"]]
    return ShiftPublic(
        id=str(row["id"]), project_id=str(row["project_id"]), project_name=row["project_name"], kind=row["kind"],
        place=ProjectPlace(**place), starts_at=row["starts_at"], ends_at=row["ends_at"], capacity=row["capacity"],
        status=row["status"], confirmed=row["confirmed"], waitlisted=row["waitlisted"], applied=row["applied"],
        distance_km=None if distance_km is None else round(distance_km, 3),
    )


def signup_public(row) -> SignupPublic:
    """A sign-up row (joined with its project and shift) as the API shows it."""
    return SignupPublic(
        id=str(row["id"]), shift_id=str(row["shift_id"]), project_id=str(row["project_id"]), project_name=row["project_name"],
        volunteer_id=row["volunteer_id"], status=row["status"], series=row["series"], starts_at=row["starts_at"],
        ends_at=row["ends_at"], place=ProjectPlace(**places_of(row)[row["place_no"]]), applied_at=row["applied_at"],
        confirmed_at=row["confirmed_at"], waitlisted_at=row["waitlisted_at"], promoted_at=row["promoted_at"],
        cancelled_at=row["cancelled_at"], cancel_reason=row["cancel_reason"], checked_in_at=row["checked_in_at"],
        checked_out_at=row["checked_out_at"], hours=row["hours"], review_reason=row["review_reason"],
        hours_status=row["hours_status"], hours_decline_reason=row["hours_decline_reason"],
    )


def _changed(row, *, previous: str | None, reason: str, at: datetime) -> OutboxRow:
    """The outbox entry of a sign-up's new state (keyed by the volunteer, as the assignment events are)."""
    place = places_of(row)[row["place_no"]]
    return outbox_row(ShiftSignupChanged(
        signup_id=str(row["id"]), shift_id=str(row["shift_id"]), project_id=str(row["project_id"]),
        project_name=row["project_name"], volunteer_id=row["volunteer_id"], status=row["status"],
        previous_status=previous, reason=reason, starts_at=row["starts_at"], ends_at=row["ends_at"],
        place=Place(**place), at=at,
    ), subject=str(row["id"]), key=row["volunteer_id"])


async def _signup_row(conn, signup_id) -> Any:
    return await conn.fetchrow(_SIGNUP + " WHERE g.id = $1", signup_id)


async def _clash(conn, volunteer_id: str, starts_at: datetime, ends_at: datetime) -> DoubleBooked:
    """The 409 naming the commitment that overlaps [starts_at, ends_at) for the volunteer."""
    row = await conn.fetchrow(
        "SELECT kind, source_id, lower(during) AS starts_at, upper(during) AS ends_at FROM volunteer_commitments"
        " WHERE volunteer_id = $1 AND during && tstzrange($2, $3) ORDER BY lower(during) LIMIT 1",
        volunteer_id, starts_at, ends_at,
    )
    if row is None:  # the other side rolled back meanwhile; still refused: this attempt was
        return DoubleBooked("与另一项已确认的任务时间冲突 (overlaps another commitment)", field="shift_id")
    what = "项目班次 (project shift sign-up)" if row["kind"] == "shift" else "行动任务 (operation assignment)"
    return DoubleBooked(
        f"与已确认的{what} {row['source_id']} 时间冲突（{row['starts_at'].isoformat()} – {row['ends_at'].isoformat()}）"
        f" (overlaps your {row['kind']} {row['source_id']})",
        field="shift_id",
    )


async def _set_status(conn, signup_id, status: str, *, extra: str = "") -> str | None:
    """Move a sign-up to `status` under a savepoint; None when done, or the constraint that refused it."""
    await conn.execute("SAVEPOINT signup_status")
    try:
        await conn.execute(f"UPDATE shift_signups SET status = $2{extra} WHERE id = $1", signup_id, status)
    except asyncpg.ExclusionViolationError as exc:
        await conn.execute("ROLLBACK TO SAVEPOINT signup_status")
        return exc.constraint_name or "volunteer_commitments_no_overlap"
    await conn.execute("RELEASE SAVEPOINT signup_status")
    return None


async def _place_on_shift(session: AsyncSession, shift, volunteer_id: str, *, series: bool, now: datetime) -> tuple[Any, str | None]:
    """Sign `volunteer_id` up for the locked `shift`: applied (approval), confirmed (room left) or waitlisted.

    Returns the sign-up row and None, or (None, refusal) when the volunteer is double-booked."""
    conn = await raw_connection(session)
    existing = await conn.fetchrow("SELECT * FROM shift_signups WHERE shift_id = $1 AND volunteer_id = $2 FOR UPDATE", shift["id"], volunteer_id)
    if existing is not None and existing["status"] in ACTIVE:
        return await _signup_row(conn, existing["id"]), None  # a phone's retry answers as the first did
    if shift["needs_approval"]:
        status = "applied"
    else:
        confirmed = await conn.fetchval("SELECT count(*) FROM shift_signups WHERE shift_id = $1 AND status = 'confirmed'", shift["id"])
        status = "confirmed" if confirmed < shift["capacity"] else "waitlisted"
    signup_id = existing["id"] if existing is not None else uuid.uuid4()
    await conn.execute("SAVEPOINT signup_place")
    try:
        await conn.execute(
            "INSERT INTO shift_signups (id, shift_id, project_id, volunteer_id, status, series, starts_at, ends_at, applied_at,"
            " confirmed_at, waitlisted_at)"
            " VALUES ($1, $2, $3, $4, $5::text, $6, $7, $8, $9::timestamptz, CASE WHEN $5::text = 'confirmed' THEN $9::timestamptz END,"
            " CASE WHEN $5::text = 'waitlisted' THEN $9::timestamptz END)"
            " ON CONFLICT (shift_id, volunteer_id) DO UPDATE SET status = EXCLUDED.status, series = EXCLUDED.series,"
            " applied_at = EXCLUDED.applied_at, confirmed_at = EXCLUDED.confirmed_at, waitlisted_at = EXCLUDED.waitlisted_at,"
            " promoted_at = NULL, cancelled_at = NULL, cancel_reason = NULL",
            signup_id, shift["id"], shift["project_id"], volunteer_id, status, series, shift["starts_at"], shift["ends_at"], now,
        )
    except asyncpg.ExclusionViolationError as exc:
        await conn.execute("ROLLBACK TO SAVEPOINT signup_place")
        return None, exc.constraint_name or "volunteer_commitments_no_overlap"
    await conn.execute("RELEASE SAVEPOINT signup_place")
    row = await _signup_row(conn, signup_id)
    await enqueue_many(session, [_changed(row, previous=existing["status"] if existing else None, reason="signed_up", at=now)])
    return row, None


async def _volunteer(conn, volunteer_id: str) -> Any:
    row = await conn.fetchrow("SELECT * FROM volunteers WHERE volunteer_id = $1", volunteer_id)
    if row is None or row["status"] != "active":
        raise Forbidden("志愿者未激活 (the volunteer is not active)", code="volunteer_inactive")
    return row


def _check_eligible(volunteer, shift) -> None:
    """403 naming the requirement a volunteer lacks for a project's shift."""
    missing = sorted(set(shift["required_skills"]) - set(volunteer["skills"]))
    if missing:
        raise Forbidden(f"缺少技能 (missing skills): {', '.join(missing)}", field="required_skills", code="not_eligible")
    if shift["required_teams"] and not set(shift["required_teams"]) & set(volunteer["teams"]):
        raise Forbidden("不属于所需队伍 (not in a required team)", field="required_teams", code="not_eligible")
    if (shift["required_skills"] or shift["required_teams"]) and not volunteer["specialised_eligible"]:
        raise Forbidden("培训未达标，暂不能承担专业任务 (behind on training: no specialised duties)", field="training", code="not_eligible")


def parse_id(value: str, field: str, what: str) -> str:
    """`value` when it is a UUID; 404 naming `field` otherwise."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{what}不存在 (no such {field.removesuffix('_id')})", field=field) from None
    return str(value)


async def _open_shift(conn, shift_id: str, *, now: datetime) -> Any:
    shift = await conn.fetchrow(_SHIFT + " WHERE s.id = $1::uuid FOR UPDATE OF s", parse_id(shift_id, "shift_id", "班次"))
    if shift is None:
        raise NotFound("班次不存在 (no such shift)", field="shift_id")
    if shift["status"] != "open" or shift["project_status"] != "active":
        raise Conflict("班次已取消 (the shift is cancelled)", field="shift_id")
    if shift["starts_at"] <= now:
        raise Conflict("班次已开始 (the shift has started)", field="shift_id")
    return shift


async def _shift_open_to(conn, volunteer_id: str, shift_id: str, *, now: datetime) -> Any:
    """The shift (locked), open for sign-up and one the volunteer is eligible for; 404/409/422 otherwise."""
    shift = await _open_shift(conn, shift_id, now=now)
    _check_eligible(await _volunteer(conn, volunteer_id), shift)
    return shift


async def sign_up(*, sessions: Sessions, principal: Principal, shift_id: str) -> SignupPublic:
    """The volunteer signs up for one shift: confirmed while there is room, waitlisted after (or applied when the
    project needs approval); 409 naming the clash when it overlaps another commitment."""
    volunteer_id = volunteer_id_of(principal)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        shift = await _shift_open_to(conn, volunteer_id, shift_id, now=now)
        row, refused = await _place_on_shift(session, shift, volunteer_id, series=False, now=now)
        if refused:
            raise await _clash(conn, volunteer_id, shift["starts_at"], shift["ends_at"])
        return signup_public(row)


async def sign_up_series(*, sessions: Sessions, principal: Principal, shift_id: str) -> SeriesSignupPublic:
    """The volunteer signs up for this shift and every later one at the same place, and for shifts generated later;
    shifts that clash with another commitment are skipped and listed."""
    volunteer_id = volunteer_id_of(principal)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        first = await _shift_open_to(conn, volunteer_id, shift_id, now=now)
        await conn.execute(
            "INSERT INTO project_series_signups (project_id, volunteer_id, since) VALUES ($1, $2, $3)"
            " ON CONFLICT (project_id, volunteer_id) DO UPDATE SET since = least(project_series_signups.since, EXCLUDED.since),"
            " cancelled_at = NULL",
            first["project_id"], volunteer_id, first["starts_at"],
        )
        shifts = await conn.fetch(
            _SHIFT + " WHERE s.project_id = $1 AND s.place_no = $2 AND s.starts_at >= $3 AND s.status = 'open'"
            " ORDER BY s.starts_at FOR UPDATE OF s",
            first["project_id"], first["place_no"], first["starts_at"],
        )
        signups, skipped = [], []
        for shift in shifts:
            row, refused = await _place_on_shift(session, shift, volunteer_id, series=True, now=now)
            if refused:
                skipped.append({"shift_id": str(shift["id"]), "starts_at": shift["starts_at"].isoformat(), "reason": "double_booked"})
            else:
                signups.append(signup_public(row))
        return SeriesSignupPublic(signups=signups, skipped=skipped)


async def sign_up_series_members(session: AsyncSession, project, shift_ids: list) -> int:
    """Sign the project's series volunteers up for newly generated shifts (at the place of their series); a shift that
    clashes with another commitment is skipped. Returns the sign-ups made."""
    conn = await raw_connection(session)
    members = await conn.fetch(
        "SELECT m.volunteer_id, m.since, (SELECT s.place_no FROM shift_signups g JOIN project_shifts s ON s.id = g.shift_id"
        "  WHERE g.project_id = m.project_id AND g.volunteer_id = m.volunteer_id AND g.series ORDER BY g.starts_at LIMIT 1) AS place_no"
        " FROM project_series_signups m WHERE m.project_id = $1 AND m.cancelled_at IS NULL",
        project["id"],
    )
    if not members:
        return 0
    now = datetime.now(UTC)
    shifts = await conn.fetch(_SHIFT + " WHERE s.id = ANY($1::uuid[]) ORDER BY s.starts_at FOR UPDATE OF s", shift_ids)
    made = 0
    for shift in shifts:
        for member in members:
            if member["place_no"] == shift["place_no"] and shift["starts_at"] >= member["since"] and shift["starts_at"] > now:
                row, refused = await _place_on_shift(session, shift, member["volunteer_id"], series=True, now=now)
                made += row is not None and not refused
    return made


async def promote_waitlist(session: AsyncSession, shift_id) -> int:
    """Confirm waitlisted volunteers, first come first served, while the shift has room; one who meanwhile holds an
    overlapping commitment stays waitlisted and the next is tried. Each promotion is an event. Returns how many."""
    conn = await raw_connection(session)
    shift = await conn.fetchrow("SELECT * FROM project_shifts WHERE id = $1 FOR UPDATE", shift_id)
    if shift is None or shift["status"] != "open" or shift["starts_at"] <= datetime.now(UTC):
        return 0
    confirmed = await conn.fetchval("SELECT count(*) FROM shift_signups WHERE shift_id = $1 AND status = 'confirmed'", shift_id)
    waiting = await conn.fetch(
        "SELECT id FROM shift_signups WHERE shift_id = $1 AND status = 'waitlisted' ORDER BY waitlisted_at, id FOR UPDATE", shift_id
    )
    promoted, now, events = 0, datetime.now(UTC), []
    for candidate in waiting:
        if confirmed >= shift["capacity"]:
            break
        if await _set_status(conn, candidate["id"], "confirmed", extra=", confirmed_at = now(), promoted_at = now()") is None:
            confirmed += 1
            promoted += 1
            events.append(_changed(await _signup_row(conn, candidate["id"]), previous="waitlisted", reason="promoted", at=now))
    if events:
        await enqueue_many(session, events)
    return promoted


async def _withdraw(session: AsyncSession, row, *, reason: str, now: datetime) -> Any:
    """Cancel one live sign-up (its shift row locked by the caller), tell it, and give a confirmed place to the waitlist."""
    conn = await raw_connection(session)
    await conn.execute(
        "UPDATE shift_signups SET status = 'cancelled', cancelled_at = $2, cancel_reason = $3 WHERE id = $1", row["id"], now, reason or None
    )
    cancelled = await _signup_row(conn, row["id"])
    await enqueue_many(session, [_changed(cancelled, previous=row["status"], reason="cancelled", at=now)])
    if row["status"] == "confirmed":
        await promote_waitlist(session, row["shift_id"])
    return cancelled


async def cancel_signup(*, sessions: Sessions, principal: Principal, shift_id: str, reason: str) -> SignupPublic:
    """The volunteer withdraws from a shift; a confirmed place goes to the first on the waitlist, who is told."""
    volunteer_id = volunteer_id_of(principal)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        parse_id(shift_id, "shift_id", "报名")
        await conn.execute("SELECT 1 FROM project_shifts WHERE id = $1::uuid FOR UPDATE", str(shift_id))
        row = await conn.fetchrow(_SIGNUP + " WHERE g.shift_id = $1::uuid AND g.volunteer_id = $2 FOR UPDATE OF g", str(shift_id), volunteer_id)
        if row is None:
            raise NotFound("报名不存在 (no such sign-up)", field="shift_id")
        if row["status"] == "cancelled":
            return signup_public(row)
        if row["starts_at"] <= now:
            raise Conflict("班次已开始，不能取消 (the shift has started)", field="shift_id")
        if row["checked_in_at"] is not None:  # checked in early: the attendance stands (check out instead)
            raise Conflict("已签到，不能取消 (already checked in: check out instead)", field="status")
        return signup_public(await _withdraw(session, row, reason=reason, now=now))


async def cancel_series(*, sessions: Sessions, principal: Principal, shift_id: str, reason: str) -> list[SignupPublic]:
    """The volunteer leaves a series from this shift on: every later sign-up of it is cancelled (waitlists promoted)
    and shifts generated later are no longer signed up for. Returns the sign-ups cancelled."""
    volunteer_id = volunteer_id_of(principal)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        parse_id(shift_id, "shift_id", "报名")
        first = await conn.fetchrow(
            "SELECT project_id, starts_at FROM shift_signups WHERE shift_id = $1::uuid AND volunteer_id = $2 AND series", str(shift_id), volunteer_id
        )
        if first is None:
            raise NotFound("没有该系列的报名 (no series sign-up for this shift)", field="shift_id")
        await conn.execute(
            "UPDATE project_series_signups SET cancelled_at = $3 WHERE project_id = $1 AND volunteer_id = $2 AND cancelled_at IS NULL",
            first["project_id"], volunteer_id, now,
        )
        shifts = await conn.fetch(
            "SELECT s.id FROM project_shifts s JOIN shift_signups g ON g.shift_id = s.id WHERE g.project_id = $1 AND g.volunteer_id = $2"
            " AND g.series AND g.starts_at >= greatest($3::timestamptz, $4::timestamptz) AND g.status IN ('applied', 'confirmed', 'waitlisted')"
            " AND g.checked_in_at IS NULL"
            " ORDER BY s.starts_at FOR UPDATE OF s",
            first["project_id"], volunteer_id, first["starts_at"], now,
        )
        out = []
        for shift in shifts:
            row = await conn.fetchrow(_SIGNUP + " WHERE g.shift_id = $1 AND g.volunteer_id = $2 FOR UPDATE OF g", shift["id"], volunteer_id)
            out.append(signup_public(await _withdraw(session, row, reason=reason, now=now)))
        return out


async def confirm_signup(*, sessions: Sessions, principal: Principal, project_id: str, signup_id: str) -> SignupPublic:
    """Staff confirm an applied sign-up (waitlisted when the shift is full); 409 naming the clash when double-booked."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        parse_id(signup_id, "signup_id", "报名")
        row = await conn.fetchrow(_SIGNUP + " WHERE g.id = $1::uuid AND g.project_id::text = $2", str(signup_id), str(project_id))
        if row is None:
            raise NotFound("报名不存在 (no such sign-up)", field="signup_id")
        ensure_staff_covers(principal, await conn.fetchval("SELECT org_path FROM projects WHERE id = $1", row["project_id"]))
        shift = await conn.fetchrow("SELECT * FROM project_shifts WHERE id = $1 FOR UPDATE", row["shift_id"])
        row = await conn.fetchrow(_SIGNUP + " WHERE g.id = $1 FOR UPDATE OF g", row["id"])
        if row["status"] == "confirmed":
            return signup_public(row)
        if row["status"] != "applied":
            raise Conflict(f"报名状态为 {row['status']}，不能确认 (cannot confirm a {row['status']} sign-up)", field="status")
        confirmed = await conn.fetchval("SELECT count(*) FROM shift_signups WHERE shift_id = $1 AND status = 'confirmed'", shift["id"])
        if confirmed >= shift["capacity"]:
            await conn.execute("UPDATE shift_signups SET status = 'waitlisted', waitlisted_at = $2 WHERE id = $1", row["id"], now)
        elif await _set_status(conn, row["id"], "confirmed", extra=", confirmed_at = now()") is not None:
            raise await _clash(conn, row["volunteer_id"], row["starts_at"], row["ends_at"])
        changed = await _signup_row(conn, row["id"])
        await enqueue_many(session, [_changed(changed, previous="applied", reason="confirmed", at=now)])
        return signup_public(changed)


async def cancel_shifts(session: AsyncSession, shift_ids: list, *, reason: str) -> int:
    """Cancel shifts and every live sign-up on them (each volunteer is told). Returns the sign-ups cancelled."""
    if not shift_ids:
        return 0
    conn = await raw_connection(session)
    now = datetime.now(UTC)
    await conn.execute("UPDATE project_shifts SET status = 'cancelled' WHERE id = ANY($1::uuid[])", shift_ids)
    rows = await conn.fetch(
        "UPDATE shift_signups SET status = 'cancelled', cancelled_at = $2, cancel_reason = $3"
        " WHERE shift_id = ANY($1::uuid[]) AND status IN ('applied', 'confirmed', 'waitlisted')"
        " RETURNING id, status",
        shift_ids, now, reason,
    )
    events = [_changed(await _signup_row(conn, r["id"]), previous=None, reason="shift_cancelled", at=now) for r in rows]
    if events:
        await enqueue_many(session, events)
    return len(rows)


async def my_signups(*, sessions: Sessions, principal: Principal, include_past: bool) -> list[SignupPublic]:
    """The calling volunteer's sign-ups, soonest first (upcoming only unless `include_past`)."""
    volunteer_id = volunteer_id_of(principal)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        rows = await conn.fetch(
            _SIGNUP + " WHERE g.volunteer_id = $1 AND ($2 OR g.ends_at > now()) ORDER BY g.starts_at LIMIT 500", volunteer_id, include_past
        )
        return [signup_public(r) for r in rows]


async def project_signups(*, sessions: Sessions, principal: Principal, project_id: str, shift_id: str | None) -> list[SignupPublic]:
    """A project's live sign-ups (one shift's with `shift_id`), for staff whose scope covers the project."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        parse_id(project_id, "project_id", "项目")
        if shift_id is not None:
            parse_id(shift_id, "project_id", "项目")  # a malformed shift id names no shift of this project
        org_path = await conn.fetchval("SELECT org_path FROM projects WHERE id = $1::uuid", str(project_id))
        if org_path is None:
            raise NotFound("项目不存在 (no such project)", field="project_id")
        ensure_staff_covers(principal, org_path)
        rows = await conn.fetch(
            _SIGNUP + " WHERE g.project_id = $1::uuid AND ($2::uuid IS NULL OR g.shift_id = $2::uuid) AND g.ends_at > now()"
            " ORDER BY g.starts_at, g.applied_at LIMIT 2000",
            str(project_id), shift_id,
        )
        return [signup_public(r) for r in rows]


async def open_shifts_near(
    *, sessions: Sessions, principal: Principal, lat: float | None, lon: float | None, radius_km: float, days: int,
) -> list[ShiftPublic]:
    """Shifts in the next `days` the caller qualifies for, within `radius_km` of a position (default: their home),
    nearest first; full ones are listed too (a sign-up joins the waitlist)."""
    volunteer_id = volunteer_id_of(principal)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        volunteer = await _volunteer(conn, volunteer_id)
        lat = volunteer["lat"] if lat is None else lat
        lon = volunteer["lon"] if lon is None else lon
        if lat is None or lon is None:
            raise Unprocessable("需要位置 (a position is required: lat and lon)", field="lat")
        projects = await conn.fetch(
            "SELECT id, places FROM projects WHERE status = 'active'"
            " AND required_skills <@ $1::text[] AND (cardinality(required_teams) = 0 OR required_teams && $2::text[])"
            " AND ($3 OR (cardinality(required_skills) = 0 AND cardinality(required_teams) = 0))",
            volunteer["skills"], volunteer["teams"], volunteer["specialised_eligible"],
        )
        near: dict[tuple, float] = {}  # (project id, place no) within reach → distance
        for project in projects:
            for n, place in enumerate(places_of(project)):
                distance = float(haversine_km(lat, lon, place["lat"], place["lon"]))
                if distance <= radius_km:
                    near[(project["id"], n)] = distance
        if not near:
            return []
        now = datetime.now(UTC)
        rows = await conn.fetch(  # by the (project_id, place_no, starts_at) key: only the projects within reach
            SHIFTS_WITH_COUNTS + " WHERE s.project_id = ANY($1::uuid[]) AND s.status = 'open' AND s.starts_at > $2 AND s.starts_at < $3"
            " GROUP BY s.id, p.id",
            list({project_id for project_id, _ in near}), now, now + timedelta(days=days),
        )
        found = [(near[(r["project_id"], r["place_no"])], r["starts_at"], r) for r in rows if (r["project_id"], r["place_no"]) in near]
        found.sort(key=lambda f: (f[0], f[1]))
        return [shift_public(row, distance) for distance, _, row in found[:OPEN_SHIFTS_LIMIT]]
