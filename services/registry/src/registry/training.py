"""Training sessions, attendance (emitting `TrainingAttended`), the yearly-rule review and the behind report."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.contracts.registry import TrainingAttended
from shouwang_shared.errors import Forbidden, NotFound, Unprocessable
from shouwang_shared.outbox import enqueue_many, outbox_row

from registry.access import ADMINS, ensure_covers, found_in_scope
from registry.daily_schedule import due_day, run_time
from registry.orgs import load_unit
from registry.schemas import AttendanceCreate, TrainingSessionCreate
from registry.tables import PUBLIC_SELECT_OF_V
from registry.training_rule import assess_training
from registry.volunteers import publish_states

Sessions = async_sessionmaker[AsyncSession]
log = logging.getLogger(__name__)
_SET_TRAINING_STANDING = text(  # the assessed volunteers whose standing changed, returning their public view
    "UPDATE volunteers AS v SET training_compliant = c.compliant, training_flagged_on = c.flagged, "
    "specialised_eligible = c.eligible, version = v.version + 1, updated_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:compliant AS boolean[]), CAST(:flagged AS date[]), CAST(:eligible AS boolean[])) "
    f"AS c(id, compliant, flagged, eligible) WHERE v.id = c.id RETURNING {PUBLIC_SELECT_OF_V}"
)
DAILY_REVIEW_JOB = "training_review"
SESSION_COLUMNS = "id, title, level, topic, org_unit_id, org_path, held_on"
LEVEL_FOR_KIND = {"county": "county", "town": "town", "branch": "town", "station": "village"}


def session_view(row: Any) -> dict:
    """A training session row as the API returns it."""
    return {**dict(row), "id": str(row["id"]), "org_unit_id": str(row["org_unit_id"])}


async def create_session(*, sessions: Sessions, principal: Principal, data: TrainingSessionCreate) -> dict:
    """A training session held by an org unit in scope (county, town or village level)."""
    if principal.role not in ADMINS:
        raise Forbidden("无权登记培训", field="role", code="role_forbidden")
    async with sessions() as session, session.begin():
        unit = await load_unit(session, data.org_unit_id, status=422)
        ensure_covers(principal, unit["path"], field="org_unit_id")
        if LEVEL_FOR_KIND[unit["kind"]] != data.level:
            raise Unprocessable(f"{unit['kind']} 组织举办的培训级别应为 {LEVEL_FOR_KIND[unit['kind']]}", field="level", code="level_mismatch")
        row = (await session.execute(
            text(f"INSERT INTO training_sessions (id, title, level, topic, org_unit_id, org_path, held_on, created_by) "
                 f"VALUES (:id, :t, :l, :tp, :o, :p, :d, :by) RETURNING {SESSION_COLUMNS}"),
            {"id": uuid.uuid4(), "t": data.title, "l": data.level, "tp": data.topic, "o": unit["id"], "p": unit["path"],
             "d": data.held_on, "by": principal.sub},
        )).mappings().one()
    return session_view(row)


async def list_sessions(
    *, sessions: Sessions, principal: Principal, since: date | None, until: date | None, level: str | None, limit: int,
) -> list[dict]:
    """Training sessions held by units in the principal's scope, newest first, with how many attended each."""
    where, params = ["s.org_path LIKE :prefix"], {"prefix": f"{principal.scope_path}%", "n": limit}
    for clause, key, value in (("s.held_on >= :since", "since", since), ("s.held_on <= :until", "until", until), ("s.level = :level", "level", level)):
        if value is not None:
            where.append(clause)
            params[key] = value
    columns = ", ".join(f"s.{c.strip()}" for c in SESSION_COLUMNS.split(","))
    async with sessions() as session:
        rows = (await session.execute(text(
            f"SELECT {columns}, (SELECT count(*) FROM training_attendance a WHERE a.session_id = s.id) AS attended"
            f" FROM training_sessions s WHERE {' AND '.join(where)} ORDER BY s.held_on DESC, s.created_at DESC LIMIT :n"
        ), params)).mappings().all()
    return [session_view(r) for r in rows]


async def record_attendance(
    *, sessions: Sessions, principal: Principal, session_id: str, data: AttendanceCreate, notice_days: int, today: date | None = None,
) -> dict:
    """Record who attended a session (idempotent per volunteer), emit `TrainingAttended`, and re-assess them."""
    today = today or date.today()
    async with sessions() as session, session.begin():
        try:
            uuid.UUID(session_id)
        except ValueError as exc:
            raise NotFound("培训不存在", field="session_id") from exc
        training = found_in_scope(principal, (await session.execute(
            text(f"SELECT {SESSION_COLUMNS} FROM training_sessions WHERE id = CAST(:id AS uuid)"), {"id": session_id}
        )).mappings().first(), path_column="org_path", field="session_id", missing="培训不存在")
        ids = list(dict.fromkeys(data.volunteer_ids))
        found = (await session.execute(
            text("SELECT id, org_unit_id, org_path FROM volunteers WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": ids}
        )).mappings().all()
        known = {str(r["id"]): r for r in found}
        missing = [i for i in ids if i not in known]
        if missing:
            raise Unprocessable(f"志愿者不存在：{', '.join(missing[:5])}", field="volunteer_ids", code="unknown_volunteer")
        for row in known.values():
            ensure_covers(principal, row["org_path"], field="volunteer_ids")
        inserted = (await session.execute(
            text("INSERT INTO training_attendance (id, session_id, volunteer_id, attended_on, recorded_by) "
                 "SELECT gen_random_uuid(), :s, v, :d, :by FROM unnest(CAST(:ids AS uuid[])) AS v "
                 "ON CONFLICT (session_id, volunteer_id) DO NOTHING RETURNING id, volunteer_id"),
            {"s": training["id"], "d": training["held_on"], "by": principal.sub, "ids": ids},
        )).mappings().all()
        events = []
        for att in inserted:
            vol = known[str(att["volunteer_id"])]
            payload = TrainingAttended(
                attendance_id=str(att["id"]), volunteer_id=str(att["volunteer_id"]), session_id=str(training["id"]),
                level=training["level"], topic=training["topic"], attended_on=training["held_on"],
                org_unit_id=str(vol["org_unit_id"]), org_path=vol["org_path"],
            )
            events.append(outbox_row(payload, subject=payload.volunteer_id))
        await enqueue_many(session, events)
        await reassess(session, volunteer_ids=[str(a["volunteer_id"]) for a in inserted], as_of=today, notice_days=notice_days)
    return {"session_id": session_id, "recorded": len(inserted), "already_recorded": len(ids) - len(inserted)}


async def reassess(session: AsyncSession, *, volunteer_ids: list[str] | None, as_of: date, notice_days: int, path: str = "") -> int:
    """Apply the yearly rule to volunteers (some, or all under `path`); store and emit only those whose standing changed."""
    where = "id = ANY(CAST(:ids AS uuid[]))" if volunteer_ids is not None else "org_path LIKE :like"
    params: dict[str, Any] = {"ids": volunteer_ids, "like": f"{path}%"} if volunteer_ids is not None else {"like": f"{path}%"}
    if volunteer_ids is not None and not volunteer_ids:
        return 0
    rows = (await session.execute(
        text(f"SELECT id, core, joined_on, training_compliant, training_flagged_on, specialised_eligible FROM volunteers "
             f"WHERE {where} AND status IN ('applicant', 'active', 'suspended')"), params,
    )).mappings().all()
    history = await _attendance_dates(session, [str(r["id"]) for r in rows], as_of=as_of)
    changed: list[tuple[str, bool, date | None, bool]] = []
    for r in rows:
        standing = assess_training(
            core=r["core"], joined_on=r["joined_on"], attended_on=history.get(str(r["id"]), []),
            flagged_since=r["training_flagged_on"], as_of=as_of, notice_days=notice_days,
        )
        now = (standing.compliant, standing.flagged_since, standing.specialised_eligible)
        if now != (r["training_compliant"], r["training_flagged_on"], r["specialised_eligible"]):
            changed.append((str(r["id"]), *now))
    if not changed:
        return 0
    updated = (await session.execute(
        _SET_TRAINING_STANDING,
        {"ids": [c[0] for c in changed], "compliant": [c[1] for c in changed], "flagged": [c[2] for c in changed],
         "eligible": [c[3] for c in changed]},
    )).mappings().all()
    await publish_states(session, updated)
    return len(updated)


async def _attendance_dates(session: AsyncSession, volunteer_ids: list[str], *, as_of: date) -> dict[str, list[date]]:
    """Each volunteer's training dates in the year up to `as_of`."""
    if not volunteer_ids:
        return {}
    rows = (await session.execute(
        text("SELECT volunteer_id, attended_on FROM training_attendance WHERE volunteer_id = ANY(CAST(:ids AS uuid[])) "
             "AND attended_on > CAST(:as_of AS date) - 365 AND attended_on <= :as_of"),
        {"ids": volunteer_ids, "as_of": as_of},
    )).all()
    out: dict[str, list[date]] = defaultdict(list)
    for vid, day in rows:
        out[str(vid)].append(day)
    return out


async def own_standing(*, sessions: Sessions, principal: Principal, notice_days: int, as_of: date | None = None) -> dict:
    """A volunteer's own training record of the trailing year and where they stand against the rule."""
    if principal.role != Role.VOLUNTEER or not principal.volunteer_id:
        raise Forbidden("仅限志愿者本人访问", field="role", code="role_forbidden")
    as_of = as_of or date.today()
    try:
        uuid.UUID(principal.volunteer_id)
    except ValueError:
        raise NotFound("志愿者不存在", field="vid") from None
    async with sessions() as session:
        me = (await session.execute(
            text("SELECT id, core, joined_on, training_flagged_on FROM volunteers WHERE id = CAST(:id AS uuid)"),
            {"id": principal.volunteer_id},
        )).mappings().first()
        if me is None:
            raise NotFound("志愿者不存在", field="vid")
        sessions_attended = (await session.execute(
            text("SELECT t.id, t.title, t.level, t.topic, t.held_on FROM training_attendance a JOIN training_sessions t "
                 "ON t.id = a.session_id WHERE a.volunteer_id = :v ORDER BY t.held_on DESC LIMIT 100"), {"v": me["id"]},
        )).mappings().all()
    standing = assess_training(
        core=me["core"], joined_on=me["joined_on"], attended_on=[r["held_on"] for r in sessions_attended],
        flagged_since=me["training_flagged_on"], as_of=as_of, notice_days=notice_days,
    )
    return {
        "required": standing.required, "attended": standing.attended, "behind": standing.behind,
        "flagged_on": standing.flagged_since, "specialised_eligible": standing.specialised_eligible,
        "sessions": [{**dict(r), "id": str(r["id"])} for r in sessions_attended],
    }


async def review_training(*, sessions: Sessions, principal: Principal, org_unit_id: str | None, as_of: date | None, notice_days: int) -> dict:
    """Re-assess every volunteer under a unit in scope against the yearly rule (flagging, eligibility); emits changes."""
    if principal.role not in (Role.COUNTY_ADMIN, Role.TOWN_ADMIN, Role.OPERATOR, Role.SERVICE):
        raise Forbidden("无权执行培训考核", field="role", code="role_forbidden")
    as_of = as_of or date.today()
    async with sessions() as session, session.begin():
        path = principal.scope_path
        if org_unit_id:
            path = (await load_unit(session, org_unit_id, status=422))["path"]
        ensure_covers(principal, path or None, field="org_unit_id")
        changed = await reassess(session, volunteer_ids=None, as_of=as_of, notice_days=notice_days, path=path)
    return {"as_of": as_of, "changed": changed}


async def behind_report(*, sessions: Sessions, principal: Principal, org_unit_id: str, as_of: date | None, notice_days: int) -> dict:
    """Who is behind the yearly rule under a unit, computed for `as_of`, with counts per org unit."""
    as_of = as_of or date.today()
    async with sessions() as session:
        unit = await load_unit(session, org_unit_id)
        ensure_covers(principal, unit["path"], field="org_unit_id")
        rows = (await session.execute(
            text("SELECT id, display_name, org_unit_id, org_path, core, joined_on, training_flagged_on FROM volunteers "
                 "WHERE org_path LIKE :like AND status IN ('applicant', 'active', 'suspended')"), {"like": f"{unit['path']}%"},
        )).mappings().all()
        history = await _attendance_dates(session, [str(r["id"]) for r in rows], as_of=as_of)
    items, per_unit = [], Counter()
    for r in rows:
        standing = assess_training(
            core=r["core"], joined_on=r["joined_on"], attended_on=history.get(str(r["id"]), []),
            flagged_since=r["training_flagged_on"], as_of=as_of, notice_days=notice_days,
        )
        if standing.behind:
            per_unit[str(r["org_unit_id"])] += 1
            items.append({
                "volunteer_id": str(r["id"]), "display_name": r["display_name"], "org_unit_id": str(r["org_unit_id"]),
                "org_path": r["org_path"], "core": r["core"], "required": standing.required, "attended": standing.attended,
                "flagged_on": standing.flagged_since, "specialised_eligible": standing.specialised_eligible,
            })
    items.sort(key=lambda i: (i["org_path"], i["display_name"]))
    return {"org_unit_id": str(unit["id"]), "as_of": as_of, "volunteers": len(rows), "behind": len(items),
            "by_org_unit": dict(per_unit), "items": items}


async def daily_review(*, sessions: Sessions, as_of: date, notice_days: int) -> dict | None:
    """The county-wide review of day `as_of`, at most once per day across replicas; None when that day's already done.

    The day is claimed in `daily_runs` in the review's own transaction: a second replica waits on the claim and then
    skips it, and a review that fails releases its claim so a later attempt runs it.
    """
    async with sessions() as session, session.begin():
        claimed = (await session.execute(
            text("INSERT INTO daily_runs (job, run_on) VALUES (:job, :day) ON CONFLICT DO NOTHING RETURNING run_on"),
            {"job": DAILY_REVIEW_JOB, "day": as_of},
        )).first()
        if claimed is None:
            return None
        changed = await reassess(session, volunteer_ids=None, as_of=as_of, notice_days=notice_days, path="")
        outcome = {"as_of": as_of.isoformat(), "changed": changed}
        await session.execute(
            text("UPDATE daily_runs SET outcome = CAST(:o AS jsonb) WHERE job = :job AND run_on = :day"),
            {"o": orjson.dumps(outcome).decode(), "job": DAILY_REVIEW_JOB, "day": as_of},
        )
    log.info("daily training review of %s: %d volunteers changed standing", as_of, changed)
    return outcome


async def run_daily_reviews(
    *, sessions: Sessions, notice_days: int, hour: int, tz: ZoneInfo,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, retry_s: float = 300,
) -> None:
    """Run the daily review at `hour` o'clock county time until cancelled (a day missed while down is caught up at start)."""
    while True:
        day = due_day(clock(), hour=hour, tz=tz)
        try:
            await daily_review(sessions=sessions, as_of=day, notice_days=notice_days)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed review is retried shortly, its day still unclaimed
            log.warning("daily training review of %s failed, retrying in %.0fs: %s", day, retry_s, exc)
            await sleep(retry_s)
            continue
        wait = (run_time(day + timedelta(days=1), hour=hour, tz=tz) - clock()).total_seconds()
        await sleep(max(wait, 0.0))
