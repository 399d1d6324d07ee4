"""Attendance at project shifts: a volunteer with a confirmed sign-up checks in and out, and the hours go to rewards.

The same machinery as an operation's post (`dispatch.offers.arrival`, `dispatch.attendance.departure`,
`dispatch.checkin_codes.issue_token`): a place's QR token (rotating on a screen, or printed for one shift) or a
position inside the project's geofence; stale tokens and far positions with a token are flagged; another place's
token is refused naming `qr_token`; offline actions follow the late-sync rule. The sign-up stays `confirmed` (the
volunteer's commitment); the attendance is stored on it. The hours follow the operation posts' rule (HOURS_APPROVAL,
`dispatch.attendance.hours_decision`): pending in the same queue as operation hours (`dispatch.hours_approval`) until
a station admin approves them, or under `flagged` approved by rule at check-out (and published as
`ServiceHoursRecorded`) unless the attendance is flagged.

A place's tokens are keyed by a place id, uuid5 of the project and the place number, under the project's secret:
one printed sheet or screen at a school gate serves every shift held there, and a sheet of last week's shift is
`stale_qr` (not another place's).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, Forbidden, NotFound
from shouwang_shared.outbox import enqueue_many

from dispatch.access import ensure_staff_covers, volunteer_id_of
from dispatch.attendance import HoursApproval
from dispatch.checkin_codes import issue_token
from dispatch.checkin_qr import Mode
from dispatch.offers import arrival, close_forgotten_check_ins, record_departure
from dispatch.projects.schemas import SignupPublic
from dispatch.projects.signups import parse_id, places_of, signup_public
from dispatch.schemas import CheckIn, CheckinTokenPublic, CheckOut

Sessions = async_sessionmaker[AsyncSession]

# A sign-up with its shift and project, under the names the operation-post code reads (`ServiceHoursRecorded` of a
# shift: operation_id = the project's id, post_id = the shift's id, assignment_id = the sign-up's id).
# What a shift's hours were served in (`ServiceHoursRecorded`'s activity fields), from projects `p` and project_shifts `s`.
PROJECT_ACTIVITY = ("'project' AS activity, p.name AS activity_name, p.kind AS activity_kind,"
                    " p.places -> s.place_no ->> 'name' AS place_name, p.org_path AS organiser_path")
ATTENDANCE = f"""
SELECT g.*, g.project_id AS operation_id, g.shift_id AS post_id, g.starts_at AS shift_start, g.ends_at AS shift_end,
       p.name AS project_name, p.places, p.org_path AS post_org_path, p.checkin_code, p.geofence_m, s.place_no,
       s.status AS shift_status, p.status AS project_status, 1 AS difficulty, 1 AS risk,
       {PROJECT_ACTIVITY}
FROM shift_signups g JOIN projects p ON p.id = g.project_id JOIN project_shifts s ON s.id = g.shift_id
"""
FORGOTTEN_CHECK_OUTS = (
    "SELECT id FROM shift_signups WHERE checked_in_at IS NOT NULL AND checked_out_at IS NULL AND ends_at <= $1"
    " ORDER BY ends_at LIMIT $2 FOR UPDATE SKIP LOCKED"
)


def place_id(project_id, place_no: int) -> str:
    """The id a project's place signs its check-in tokens with (stable: the project and the place's number)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"shouwang:dispatch:project-place:{project_id}:{place_no}"))


def _place(row) -> dict[str, Any]:
    """The shift's place as `offers.arrival` reads a post."""
    place = places_of(row)[row["place_no"]]
    return {"post_id": place_id(row["project_id"], row["place_no"]), "checkin_code": row["checkin_code"], "post_lat": place["lat"],
            "post_lon": place["lon"], "geofence_m": row["geofence_m"], "shift_start": row["shift_start"], "shift_end": row["shift_end"]}


async def shift_checkin_token(
    *, sessions: Sessions, principal: Principal, project_id: str, shift_id: str, mode: Mode, now: datetime | None = None
) -> CheckinTokenPublic:
    """The token the QR of a shift's place carries now (rotating) or for the shift (printed); staff in the project's scope."""
    parse_id(project_id, "project_id", "项目")
    async with sessions() as session, session.begin():
        shift = await (await raw_connection(session)).fetchrow(
            "SELECT s.id, s.project_id, s.place_no, s.starts_at AS shift_start, s.ends_at AS shift_end, s.status, p.places, p.org_path,"
            " p.checkin_code, p.geofence_m, p.status AS project_status FROM project_shifts s JOIN projects p ON p.id = s.project_id"
            " WHERE s.id = $1::uuid AND s.project_id = $2::uuid", parse_id(shift_id, "shift_id", "班次"), project_id,
        )
    if shift is None:
        raise NotFound("班次不存在 (no such shift)", field="shift_id")
    ensure_staff_covers(principal, shift["org_path"])
    if shift["status"] != "open" or shift["project_status"] != "active":
        raise Conflict("班次已取消 (the shift is cancelled)", field="shift_id")
    place = _place(shift)
    issued = issue_token(mode, place_id=place["post_id"], secret=shift["checkin_code"], shift_start=shift["shift_start"],
                         shift_end=shift["shift_end"], now=now or datetime.now(UTC))
    return CheckinTokenPublic(
        post_id=str(shift["id"]), post_name=places_of(shift)[shift["place_no"]]["name"], mode=issued.mode, token=issued.token,
        valid_from=issued.valid_from, valid_until=issued.valid_until, refresh_at=issued.refresh_at,
        shift_start=shift["shift_start"], shift_end=shift["shift_end"],
    )


async def _own_signup(conn, principal: Principal, shift_id: str) -> Any:
    """The caller's sign-up for the shift, locked; 403 naming `shift_id` when they have none."""
    volunteer_id = volunteer_id_of(principal)
    row = await conn.fetchrow(ATTENDANCE + " WHERE g.shift_id = $1::uuid AND g.volunteer_id = $2 FOR UPDATE OF g",
                              parse_id(shift_id, "shift_id", "班次"), volunteer_id)
    if row is None:
        raise Forbidden("你没有报名这个班次 (you have no sign-up for this shift)", field="shift_id")
    return row


async def check_in(*, sessions: Sessions, principal: Principal, shift_id: str, proof: CheckIn) -> SignupPublic:
    """The volunteer arrives at the shift's place: its QR token, or a position inside the geofence (at the phone's time if offline)."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _own_signup(conn, principal, shift_id)
        if row["checked_in_at"] is not None:  # a repeat (a phone's retry) answers as the first did
            return signup_public(row)
        if row["status"] != "confirmed":
            raise Conflict(f"报名状态为 {row['status']}，不能签到 (only a confirmed sign-up checks in; this one is {row['status']})", field="status")
        if row["shift_status"] != "open" or row["project_status"] != "active":
            raise Conflict("班次已取消 (the shift is cancelled)", field="shift_id")
        when = arrival(_place(row), proof, received=datetime.now(UTC))
        await conn.execute("UPDATE shift_signups SET checked_in_at = $2, review_reason = $3 WHERE id = $1", row["id"], when.at, when.review)
        return signup_public(await conn.fetchrow(ATTENDANCE + " WHERE g.id = $1", row["id"]))


async def check_out(
    *, sessions: Sessions, principal: Principal, shift_id: str, leaving: CheckOut, approval: HoursApproval
) -> SignupPublic:
    """The volunteer leaves (at the phone's time if offline): hours inside the shift are recorded, for approval under `approval`."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await _own_signup(conn, principal, shift_id)
        if row["checked_out_at"] is not None:
            return signup_public(row)
        if row["checked_in_at"] is None:
            raise Conflict("尚未签到，不能签退 (not checked in)", field="status")
        _, approved = await record_departure(conn, "shift_signups", row, leaving, approval)
        await enqueue_many(session, approved)
        return signup_public(await conn.fetchrow(ATTENDANCE + " WHERE g.id = $1", row["id"]))


async def auto_check_out(*, sessions: Sessions, now: datetime | None = None, limit: int = 5000) -> int:
    """Sweep: volunteers still checked in to a shift AUTO_CHECK_OUT_AFTER past its end are checked out at its end,
    flagged `auto_checkout`; their hours wait for a station admin's approval."""
    now = now or datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        return len(await close_forgotten_check_ins(conn, "shift_signups", FORGOTTEN_CHECK_OUTS, ATTENDANCE + " WHERE g.id = ANY($1::uuid[])",
                                                   now=now, limit=limit))
