"""Project use cases for staff: create, list, edit, "this and future" schedule edits, exceptions, shift generation.

Each function owns its transaction. Shifts are generated from the schedule a horizon ahead: the ones not stored yet
are COPYed, and the unique key (project_id, place_no, starts_at) refuses any a second replica stored meanwhile (then
they are inserted again with `ON CONFLICT DO NOTHING`), so a regeneration, a sweep and a second replica running at
the same moment never create a shift twice."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import NotFound, Unprocessable

from dispatch.access import ensure_staff_covers
from dispatch.projects import schedule
from dispatch.projects.schemas import (
    ProjectCreate,
    ProjectPlace,
    ProjectPublic,
    ProjectUpdate,
    ScheduleExceptionsCreate,
    ScheduleUpdate,
    SegmentPublic,
    ShiftPublic,
    ShiftsGeneratedPublic,
)
from dispatch.projects.signups import (
    SHIFTS_WITH_COUNTS,
    cancel_shifts,
    parse_id,
    places_of,
    promote_waitlist,
    shift_public,
    sign_up_series_members,
)
from dispatch.read_model import known_codes

Sessions = async_sessionmaker[AsyncSession]
SWEEP_BATCH = 50  # projects one replica tops up per sweep round


async def project_or_404(conn, project_id: str, *, lock: bool = False, staff: Principal | None = None) -> Any:
    """The project row (locked with `lock`); 404 naming `project_id` when there is none, 403 when the `staff`
    member's scope does not cover it."""
    row = await conn.fetchrow(
        "SELECT * FROM projects WHERE id = $1::uuid" + (" FOR UPDATE" if lock else ""), parse_id(project_id, "project_id", "项目")
    )
    if row is None:
        raise NotFound("项目不存在 (no such project)", field="project_id")
    if staff is not None:
        ensure_staff_covers(staff, row["org_path"])
    return row


async def segments_of(conn, project_id) -> list[schedule.Segment]:
    """The schedule segments of a project, oldest first."""
    rows = await conn.fetch(
        "SELECT rrule, start_time, starts_on, ends_before FROM project_schedules WHERE project_id = $1 ORDER BY starts_on",
        project_id,
    )
    return [schedule.Segment(r["rrule"], r["start_time"], r["starts_on"], r["ends_before"]) for r in rows]


async def _public(conn, row) -> ProjectPublic:
    segments = await segments_of(conn, row["id"])
    return ProjectPublic(
        id=str(row["id"]), kind=row["kind"], label=row["label"], name=row["name"], description=row["description"],
        org_unit_id=row["org_unit_id"], org_path=row["org_path"], places=[ProjectPlace(**p) for p in places_of(row)],
        required_skills=row["required_skills"], required_teams=row["required_teams"], capacity=row["capacity"],
        shift_minutes=row["shift_minutes"], needs_approval=row["needs_approval"], timezone=row["timezone"],
        exdates=row["exdates"], horizon_days=row["horizon_days"], status=row["status"],
        schedule=[SegmentPublic(rrule=s.rrule, start_time=s.start_time, starts_on=s.starts_on, ends_before=s.ends_before) for s in segments],
        generated_until=row["generated_until"], created_by=row["created_by"], created_at=row["created_at"],
    )


def _checked_segment(segment: schedule.Segment, prefix: str) -> schedule.Segment:
    try:
        schedule.validate_segment(segment)
    except schedule.ScheduleError as exc:
        raise Unprocessable(str(exc), field=f"{prefix}{exc.field}") from None
    return segment


async def _check_codes(conn, skills: list[str], teams: list[str]) -> None:
    known_skills, known_teams, _ = await known_codes(conn)
    for field, wanted, known in (("required_skills", skills, known_skills), ("required_teams", teams, known_teams)):
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise Unprocessable(f"未知的代码 (unknown code): {', '.join(unknown)}", field=field)


async def generate_shifts(session: AsyncSession, project, *, now: datetime | None = None, series: bool = True) -> ShiftsGeneratedPublic:
    """Add the project's shifts from now to its horizon (those already there stay; cancelled ones come back if the
    schedule has them again), and sign the series' volunteers up for the new ones (`series=False`: known to have none)."""
    conn = await raw_connection(session)
    now = now or datetime.now(UTC)
    until = now + timedelta(days=project["horizon_days"])
    if project["status"] != "active":
        return ShiftsGeneratedPublic(project_id=str(project["id"]), created=0, generated_until=project["generated_until"] or now)
    segments = await segments_of(conn, project["id"])
    starts = schedule.occurrences(segments, exdates=project["exdates"], tz=project["timezone"], start=now, end=until)
    places = range(len(places_of(project)))
    minutes = timedelta(minutes=project["shift_minutes"])
    have = {
        (r["place_no"], r["starts_at"]): r for r in await conn.fetch(
            "SELECT id, place_no, starts_at, status FROM project_shifts WHERE project_id = $1 AND starts_at >= $2 AND starts_at < $3",
            project["id"], now, until,
        )
    }
    fresh = [(uuid.uuid4(), project["id"], n, t, t + minutes, project["capacity"]) for t in starts for n in places if (n, t) not in have]
    created = await _store_shifts(conn, fresh)
    reopen = [have[(n, t)]["id"] for t in starts for n in places if (n, t) in have and have[(n, t)]["status"] == "cancelled"]
    if reopen:
        await conn.execute("UPDATE project_shifts SET status = 'open' WHERE id = ANY($1::uuid[]) AND status = 'cancelled'", reopen)
    rows = created + reopen
    await conn.execute(
        "UPDATE projects SET generated_until = greatest(coalesce(generated_until, $2), $2) WHERE id = $1", project["id"], until
    )
    if rows and series:
        await sign_up_series_members(session, project, rows)
    return ShiftsGeneratedPublic(project_id=str(project["id"]), created=len(rows), generated_until=until)


SHIFT_COLUMNS = ["id", "project_id", "place_no", "starts_at", "ends_at", "capacity"]


async def _store_shifts(conn, records: list[tuple]) -> list[uuid.UUID]:
    """COPY new shift rows; when another replica stored some of them meanwhile (the unique key refuses the COPY), insert
    again skipping those. Returns the ids stored by this call."""
    if not records:
        return []
    await conn.execute("SAVEPOINT shifts_copy")
    try:
        await conn.copy_records_to_table("project_shifts", records=records, columns=SHIFT_COLUMNS)
    except asyncpg.UniqueViolationError:
        await conn.execute("ROLLBACK TO SAVEPOINT shifts_copy")
        rows = await conn.fetch(
            "INSERT INTO project_shifts (id, project_id, place_no, starts_at, ends_at, capacity)"
            " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::smallint[], $4::timestamptz[], $5::timestamptz[], $6::int[])"
            " ON CONFLICT (project_id, place_no, starts_at) DO NOTHING RETURNING id",
            *[list(column) for column in zip(*records, strict=True)],
        )
        return [r["id"] for r in rows]
    await conn.execute("RELEASE SAVEPOINT shifts_copy")
    return [r[0] for r in records]


async def create_project(*, sessions: Sessions, principal: Principal, body: ProjectCreate) -> ProjectPublic:
    """Create a project with its schedule and generate its first shifts."""
    ensure_staff_covers(principal, body.org_path)
    segment = _checked_segment(
        schedule.Segment(body.schedule.rrule, body.schedule.start_time, body.schedule.starts_on, body.schedule.ends_before),
        "schedule.",
    )
    project_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        await _check_codes(conn, body.required_skills, body.required_teams)
        await conn.execute(
            "INSERT INTO projects (id, kind, label, name, description, org_unit_id, org_path, places, required_skills,"
            " required_teams, capacity, shift_minutes, needs_approval, timezone, exdates, horizon_days, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            project_id, body.kind, body.label, body.name, body.description, body.org_unit_id, body.org_path,
            orjson.dumps([p.model_dump() for p in body.places]).decode(), body.required_skills, body.required_teams,
            body.capacity, body.shift_minutes, body.needs_approval, schedule.COUNTY_TZ, sorted(set(body.exdates)),
            body.horizon_days, principal.sub,
        )
        await _insert_segments(conn, project_id, [segment], principal.sub)
        try:
            await generate_shifts(session, await project_or_404(conn, str(project_id)))
        except schedule.ScheduleError as exc:
            raise Unprocessable(str(exc), field=f"schedule.{exc.field}") from None
        return await _public(conn, await project_or_404(conn, str(project_id)))


async def _insert_segments(conn, project_id, segments: list[schedule.Segment], by: str) -> None:
    await conn.executemany(
        "INSERT INTO project_schedules (project_id, starts_on, ends_before, rrule, start_time, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(project_id, s.starts_on, s.ends_before, s.rrule, s.start_time, by) for s in segments],
    )


async def get_project(*, sessions: Sessions, principal: Principal, project_id: str) -> ProjectPublic:
    """A project, for staff whose scope covers it."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await project_or_404(conn, project_id, staff=principal)
        return await _public(conn, row)


async def list_projects(*, sessions: Sessions, principal: Principal, kind: str | None, limit: int) -> list[ProjectPublic]:
    """The projects inside the caller's org scope, newest first (dispatch staff only)."""
    scope = None if principal.role == Role.OPERATOR else principal.scope_path
    ensure_staff_covers(principal, scope)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        rows = await conn.fetch(
            "SELECT * FROM projects WHERE ($1::text IS NULL OR kind = $1)"
            " AND ($2::text IS NULL OR org_path = $2 OR org_path LIKE $3) ORDER BY created_at DESC LIMIT $4",
            kind, scope, f"{scope.rstrip('/')}/%" if scope else None, limit,
        )
        return [await _public(conn, row) for row in rows]


async def update_project(*, sessions: Sessions, principal: Principal, project_id: str, body: ProjectUpdate) -> ProjectPublic:
    """Change a project's name, capacity, approval, horizon or status; a new capacity applies to shifts not yet
    started (a larger one promotes from their waitlists)."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await project_or_404(conn, project_id, lock=True, staff=principal)
        changes = body.model_dump(exclude_none=True)
        if changes:
            columns = list(changes)
            await conn.execute(
                f"UPDATE projects SET {', '.join(f'{c} = ${i + 2}' for i, c in enumerate(columns))}, updated_at = now() WHERE id = $1",
                row["id"], *[changes[c] for c in columns],
            )
        if body.capacity is not None and body.capacity != row["capacity"]:
            shifts = await conn.fetch(
                "UPDATE project_shifts SET capacity = $2 WHERE project_id = $1 AND starts_at > now() AND status = 'open'"
                " RETURNING id", row["id"], body.capacity,
            )
            if body.capacity > row["capacity"]:
                for shift in shifts:
                    await promote_waitlist(session, shift["id"])
        row = await project_or_404(conn, project_id)
        if body.horizon_days is not None or body.status == "active":
            await generate_shifts(session, row)
            row = await project_or_404(conn, project_id)
        return await _public(conn, row)


async def _cancel_unscheduled(session: AsyncSession, project, *, since: datetime, reason: str) -> int:
    """Cancel the project's open shifts from `since` that its schedule no longer has (and their sign-ups)."""
    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT id, starts_at FROM project_shifts WHERE project_id = $1 AND status = 'open' AND starts_at >= $2",
        project["id"], since,
    )
    if not rows:
        return 0
    last = max(r["starts_at"] for r in rows) + timedelta(seconds=1)
    segments = await segments_of(conn, project["id"])
    wanted = set(schedule.occurrences(segments, exdates=project["exdates"], tz=project["timezone"], start=since, end=last))
    gone = [r["id"] for r in rows if r["starts_at"] not in wanted]
    await cancel_shifts(session, gone, reason=reason)
    return len(gone)


def _local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(tz))


async def edit_schedule(*, sessions: Sessions, principal: Principal, project_id: str, body: ScheduleUpdate) -> ProjectPublic:
    """A "this and future" edit: the rules end before `from_date`, the new rule starts there; shifts from that date
    the new rule does not have are cancelled (their volunteers are told), and the new ones are generated."""
    new = _checked_segment(schedule.Segment(body.rrule, body.start_time, body.from_date, body.ends_before), "")
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await project_or_404(conn, project_id, lock=True, staff=principal)
        now = datetime.now(UTC)
        if body.from_date < now.astimezone(ZoneInfo(row["timezone"])).date():
            raise Unprocessable("只能修改今天及以后的排班 (only today and later can change)", field="from_date")
        since = max(_local_midnight(body.from_date, row["timezone"]), now)  # a shift already begun today stays as it is
        segments = schedule.split_at(await segments_of(conn, row["id"]), on=body.from_date, new=new)
        await conn.execute("DELETE FROM project_schedules WHERE project_id = $1", row["id"])
        await _insert_segments(conn, row["id"], segments, principal.sub)
        await conn.execute("UPDATE projects SET updated_at = now() WHERE id = $1", row["id"])
        await _cancel_unscheduled(session, row, since=since, reason="排班调整 (schedule changed)")
        await generate_shifts(session, row)
        return await _public(conn, await project_or_404(conn, project_id))


async def add_exceptions(*, sessions: Sessions, principal: Principal, project_id: str, body: ScheduleExceptionsCreate) -> ProjectPublic:
    """Take local dates out of the schedule (EXDATE); shifts already generated on them are cancelled."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await project_or_404(conn, project_id, lock=True, staff=principal)
        await conn.execute(
            "UPDATE projects SET exdates = (SELECT array_agg(DISTINCT d ORDER BY d) FROM unnest(exdates || $2::date[]) d),"
            " updated_at = now() WHERE id = $1",
            row["id"], body.dates,
        )
        row = await project_or_404(conn, project_id)
        await _cancel_unscheduled(session, row, since=datetime.now(UTC), reason=body.reason)
        return await _public(conn, row)


async def generate_project_shifts(*, sessions: Sessions, principal: Principal, project_id: str) -> ShiftsGeneratedPublic:
    """Top up one project's shifts to its horizon now (what the sweep does on its own)."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await project_or_404(conn, project_id, staff=principal)
        return await generate_shifts(session, row)


async def generate_due_shifts(*, sessions: Sessions, now: datetime | None = None) -> int:
    """Top up every active project whose shifts end less than a day before its horizon; replicas share the work
    (`SKIP LOCKED`) and the unique key keeps them from doubling a shift. Returns the shifts created."""
    now = now or datetime.now(UTC)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        rows = await conn.fetch(
            "SELECT * FROM projects WHERE status = 'active'"
            " AND (generated_until IS NULL OR generated_until < $1::timestamptz + make_interval(days => horizon_days - 1))"
            " ORDER BY generated_until NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED",
            now, SWEEP_BATCH,
        )
        with_series = {r["project_id"] for r in await conn.fetch(
            "SELECT DISTINCT project_id FROM project_series_signups WHERE project_id = ANY($1::uuid[]) AND cancelled_at IS NULL",
            [r["id"] for r in rows],
        )}
        created = 0
        for row in rows:
            created += (await generate_shifts(session, row, now=now, series=row["id"] in with_series)).created
        return created


async def list_shifts(
    *, sessions: Sessions, principal: Principal, project_id: str, start: datetime | None, end: datetime | None, limit: int,
) -> list[ShiftPublic]:
    """A project's shifts in a window (from now by default), soonest first, with how full each is."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await project_or_404(conn, project_id, staff=principal)
        rows = await conn.fetch(
            SHIFTS_WITH_COUNTS + " WHERE s.project_id = $1 AND s.starts_at >= $2 AND ($3::timestamptz IS NULL OR s.starts_at < $3)"
            " GROUP BY s.id, p.id ORDER BY s.starts_at, s.place_no LIMIT $4",
            row["id"], start or datetime.now(UTC), end, limit,
        )
        return [shift_public(r) for r in rows]
