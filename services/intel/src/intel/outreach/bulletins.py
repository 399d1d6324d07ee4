"""Safety bulletins: drafted from tip trends or by hand, numbered and published as `BulletinPublished`, delivered to the channels."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.intel import BulletinPublished
from shouwang_shared.errors import Conflict, NotFound, id_or_404
from shouwang_shared.outbox import enqueue

from intel.access import covers_all, ensure_in_scope
from intel.orgunits import area_names
from intel.outreach.channels import BULLETIN_DELIVERIES, BulletinChannel, BulletinMessage
from intel.outreach.trends import rising_trends
from intel.schemas import BulletinCreate, TrendDraftCreate

log = logging.getLogger(__name__)

COLUMNS = (
    "id, title, body, case_type, channels, audience_org_paths, status, basis, created_by, created_at, published_at,"
    " county_path, serial_year, serial"
)
_BULLETIN = text(f"SELECT {COLUMNS} FROM bulletins WHERE id = :id")
_BULLETIN_FOR_UPDATE = text(f"SELECT {COLUMNS} FROM bulletins WHERE id = :id FOR UPDATE")
_INSERT_BULLETIN = text(
    "INSERT INTO bulletins (id, title, body, case_type, channels, audience_org_paths, basis, created_by)"
    " VALUES (:id, :t, :b, :c, CAST(:ch AS jsonb), CAST(:p AS jsonb), CAST(:basis AS jsonb), :by)"
)
_TIPS_BY_AREA = text(  # tips per (category, org path): in the recent window and in the baseline before it
    "SELECT category, org_path, count(*) FILTER (WHERE submitted_at >= :rf) AS recent,"
    " count(*) FILTER (WHERE submitted_at < :rf) AS base FROM tips"
    " WHERE submitted_at >= :bf GROUP BY category, org_path"
)
_PUBLISH = text(
    "UPDATE bulletins SET status = 'published', published_at = :now, county_path = :county, serial_year = :year,"
    " serial = :serial WHERE id = :id"
)
_OPEN_DELIVERIES = text(  # one per channel
    "INSERT INTO bulletin_deliveries (bulletin_id, channel, next_attempt_at) SELECT :id, ch, :now"
    " FROM unnest(CAST(:channels AS text[])) AS ch ON CONFLICT DO NOTHING"
)
_NEXT_SERIAL = text(
    "INSERT INTO bulletin_serials (county_path, year, last_serial) VALUES (:c, :y, 1) ON CONFLICT (county_path, year)"
    " DO UPDATE SET last_serial = bulletin_serials.last_serial + 1 RETURNING last_serial"
)
_DUE_DELIVERIES = text(
    "SELECT d.bulletin_id, d.channel, d.attempts, b.title, b.body, b.case_type, b.audience_org_paths, b.serial_year, b.serial"
    " FROM bulletin_deliveries d JOIN bulletins b ON b.id = d.bulletin_id WHERE d.status = 'pending' AND d.next_attempt_at <= :now"
    " ORDER BY d.next_attempt_at LIMIT :n FOR UPDATE OF d SKIP LOCKED"
)
_DELIVERY_FAILED = text(
    "UPDATE bulletin_deliveries SET attempts = :a, last_error = :err, next_attempt_at = :next,"
    " status = CASE WHEN :gave_up THEN 'failed' ELSE status END WHERE bulletin_id = :id AND channel = :ch"
)
_DELIVERED = text(
    "UPDATE bulletin_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = :now, last_error = NULL"
    " WHERE bulletin_id = :id AND channel = :ch"
)
_DELIVERIES_OF = text(
    "SELECT channel, status, attempts, delivered_at, last_error FROM bulletin_deliveries WHERE bulletin_id = :id ORDER BY channel"
)
_DELIVERY_STATUSES = text(
    "SELECT d.channel, d.status, b.audience_org_paths FROM bulletin_deliveries d JOIN bulletins b ON b.id = d.bulletin_id"
    " WHERE CAST(:year AS int) IS NULL OR b.serial_year = :year"
)
BEIJING = ZoneInfo("Asia/Shanghai")  # a bulletin's year is the county's calendar year
DELIVERY_ATTEMPTS = 8  # tries of one channel before the delivery is given up as failed (and shown so)


def serial_label(year: int | None, serial: int | None) -> str | None:
    """How the issue is named on the bulletin: `2026年第3期`."""
    return f"{year}年第{serial}期" if serial is not None else None


def county_of(paths: list[str], default: str) -> str:
    """The county a bulletin is numbered in: the first segment of its first audience path (one deployment, one county)."""
    for path in paths:
        top = path.strip("/").split("/", 1)[0]
        if top:
            return "/" + top
    return default or "/"


def _bulletin(r) -> dict:
    return {
        "bulletin_id": str(r.id), "title": r.title, "body": r.body, "case_type": r.case_type, "channels": r.channels,
        "audience_org_paths": r.audience_org_paths, "status": r.status, "basis": r.basis,
        "created_at": r.created_at.isoformat(), "published_at": r.published_at.isoformat() if r.published_at else None,
        "serial": r.serial, "serial_year": r.serial_year, "serial_label": serial_label(r.serial_year, r.serial),
    }


async def _insert(session: AsyncSession, *, title: str, body: str, case_type: str, channels: list[str], paths: list[str], basis: dict, by: str) -> uuid.UUID:
    bulletin_id = uuid.uuid4()
    await session.execute(
        _INSERT_BULLETIN,
        {"id": bulletin_id, "t": title, "b": body, "c": case_type, "ch": orjson.dumps(channels).decode(),
         "p": orjson.dumps(paths).decode(), "basis": orjson.dumps(basis).decode(), "by": by},
    )
    return bulletin_id


async def draft_bulletin(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, body: BulletinCreate) -> dict:
    """Store a hand-written draft for areas in the principal's scope."""
    for i, path in enumerate(body.audience_org_paths):
        ensure_in_scope(principal, path, field=f"audience_org_paths.{i}")
    async with sessions() as session, session.begin():
        bid = await _insert(session, title=body.title, body=body.body, case_type=body.case_type, channels=list(body.channels),
                            paths=body.audience_org_paths, basis={"source": "manual"}, by=principal.sub)
        row = (await session.execute(_BULLETIN, {"id": bid})).one()
    return _bulletin(row)


async def draft_from_trends(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, body: TrendDraftCreate) -> list[dict]:
    """Drafts for every case type rising in an area of the principal's scope (recent window vs the baseline before it)."""
    now = datetime.now(UTC)
    recent_from = now - timedelta(days=body.days)
    base_from = recent_from - timedelta(days=body.baseline_days)
    out = []
    async with sessions() as session, session.begin():
        rows = (await session.execute(_TIPS_BY_AREA, {"rf": recent_from, "bf": base_from})).all()
        rows = [r for r in rows if principal.covers(r.org_path)]
        names = await area_names(session)
        drafts = rising_trends(
            recent={(r.category, r.org_path): r.recent for r in rows if r.recent},
            baseline={(r.category, r.org_path): r.base for r in rows if r.base},
            baseline_periods=body.baseline_days / body.days, names=names, min_recent=body.min_recent, min_ratio=body.min_ratio,
        )
        for d in drafts:
            bid = await _insert(
                session, title=d.title, body=d.body, case_type=d.case_type, channels=["public_account"], paths=[d.org_path],
                basis={"source": "trend", "recent": d.recent, "baseline_per_period": round(d.baseline, 2), "days": body.days}, by=principal.sub,
            )
            out.append(_bulletin((await session.execute(_BULLETIN, {"id": bid})).one()))
    return out


async def publish_bulletin(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, bulletin_id: str, default_county: str = ""
) -> dict:
    """Publish a draft: its county's next serial for the year, `BulletinPublished` and one delivery per channel, in one commit."""
    bid = id_or_404(bulletin_id, field="bulletin_id", message="简报不存在")
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        row = (await session.execute(_BULLETIN_FOR_UPDATE, {"id": bid})).first()
        if row is None or not covers_all(principal, row.audience_org_paths):
            raise NotFound("简报不存在", field="bulletin_id")
        if row.status == "published":
            raise Conflict("简报已发布", field="status", code="already_published")
        county, year = county_of(row.audience_org_paths, default_county), now.astimezone(BEIJING).year
        serial = await _next_serial(session, county=county, year=year)
        await session.execute(
            _PUBLISH,
            {"now": now, "id": bid, "county": county, "year": year, "serial": serial},
        )
        await session.execute(
            _OPEN_DELIVERIES,
            {"id": bid, "now": now, "channels": list(dict.fromkeys(row.channels))},
        )
        payload = BulletinPublished(
            bulletin_id=str(bid), title=row.title, body=row.body, case_type=row.case_type, channels=row.channels,
            audience_org_paths=row.audience_org_paths, published_at=now, serial=serial, serial_year=year,
            serial_label=serial_label(year, serial),
        )
        await enqueue(session, payload, subject=str(bid))
        row = (await session.execute(_BULLETIN, {"id": bid})).one()
    return _bulletin(row)


async def _next_serial(session: AsyncSession, *, county: str, year: int) -> int:
    """The county's next bulletin serial of the year; the counter row stays locked until the publishing commit (gap-free)."""
    return (await session.execute(_NEXT_SERIAL, {"c": county, "y": year})).scalar_one()


async def deliver_due_bulletins(
    *, sessions: async_sessionmaker[AsyncSession], channels: dict[str, BulletinChannel], retry_s: float, limit: int = 50
) -> int:
    """Send due deliveries through their channel's adapter, each marked once it is accepted; returns how many were delivered.

    A failed send is tried again after `retry_s` doubling, `DELIVERY_ATTEMPTS` times in all, then marked failed. Rows are
    locked (`SKIP LOCKED`) while sent, so replicas never send one twice; the counter moves only after the commit.
    """
    now = datetime.now(UTC)
    outcomes: list[tuple[str, str]] = []
    async with sessions() as session, session.begin():
        for r in (await session.execute(_DUE_DELIVERIES, {"now": now, "n": limit})).all():
            key = {"id": r.bulletin_id, "ch": r.channel}
            adapter = channels.get(r.channel)
            try:
                if adapter is None:
                    raise LookupError(f"no adapter for channel {r.channel}")
                await adapter.send(BulletinMessage(
                    delivery_id=f"{r.bulletin_id}:{r.channel}", bulletin_id=str(r.bulletin_id), channel=r.channel,
                    serial_label=serial_label(r.serial_year, r.serial), title=r.title, body=r.body, case_type=r.case_type,
                    audience_org_paths=list(r.audience_org_paths),
                ))
            except Exception as exc:  # noqa: BLE001 - a channel's failure is recorded on the delivery and retried
                attempts = r.attempts + 1
                gave_up = attempts >= DELIVERY_ATTEMPTS
                log.warning("bulletin %s to %s failed (attempt %d): %s: %s", r.bulletin_id, r.channel, attempts, type(exc).__name__, exc)
                await session.execute(
                    _DELIVERY_FAILED,
                    {**key, "a": attempts, "err": f"{type(exc).__name__}: {exc}"[:500], "gave_up": gave_up,
                     "next": now + timedelta(seconds=retry_s * 2 ** (attempts - 1))},
                )
                if gave_up:
                    outcomes.append((r.channel, "failed"))
                continue
            await session.execute(_DELIVERED, {**key, "now": datetime.now(UTC)})
            outcomes.append((r.channel, "delivered"))
    for channel, outcome in outcomes:
        BULLETIN_DELIVERIES.labels(channel=channel, outcome=outcome).inc()
    return sum(1 for _, o in outcomes if o == "delivered")


async def delivery_counts(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, bulletin_id: str) -> dict:
    """How a published bulletin went out: each channel's delivery status and attempts."""
    bid = id_or_404(bulletin_id, field="bulletin_id", message="简报不存在")
    async with sessions() as session:
        row = (await session.execute(_BULLETIN, {"id": bid})).first()
        if row is None or not covers_all(principal, row.audience_org_paths):
            raise NotFound("简报不存在", field="bulletin_id")
        rows = (await session.execute(_DELIVERIES_OF, {"id": bid})).all()
    return {
        "bulletin_id": str(bid), "serial_label": serial_label(row.serial_year, row.serial),
        "deliveries": [
            {"channel": d.channel, "status": d.status, "attempts": d.attempts, "last_error": d.last_error,
             "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None}
            for d in rows
        ],
    }


async def delivered_per_channel(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, year: int | None = None) -> list[dict]:
    """Bulletins delivered per channel (and still pending or failed), over the published bulletins in the principal's scope."""
    async with sessions() as session:
        rows = (await session.execute(_DELIVERY_STATUSES, {"year": year})).all()
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        if covers_all(principal, r.audience_org_paths):
            per = counts.setdefault(r.channel, {"delivered": 0, "pending": 0, "failed": 0})
            per[r.status] += 1
    return [{"channel": ch, **per} for ch, per in sorted(counts.items())]


async def list_drafts(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, limit: int = 100) -> list[dict]:
    """Drafts waiting to be published whose audience lies in the principal's scope, newest first."""
    async with sessions() as session:
        rows = (await session.execute(
            text(f"SELECT {COLUMNS} FROM bulletins WHERE status = 'draft' ORDER BY created_at DESC LIMIT :n"), {"n": 5 * limit},
        )).all()
    return [_bulletin(r) for r in rows if covers_all(principal, r.audience_org_paths)][:limit]


async def public_bulletins(
    *, sessions: async_sessionmaker[AsyncSession], case_type: str | None, org_path: str | None, limit: int = 50
) -> list[dict]:
    """Published bulletins, newest first, by case type and area (an area sees bulletins for it and the areas above it)."""
    clauses, params = ["status = 'published'"], {"n": limit}
    if case_type:
        clauses.append("case_type = :ct")
        params["ct"] = case_type
    if org_path:  # before the limit: a busy county's other areas must not push this area's bulletins out of the page
        clauses.append("EXISTS (SELECT 1 FROM jsonb_array_elements_text(audience_org_paths) AS a(p) "
                       "WHERE :area = a.p OR starts_with(:area, rtrim(a.p, '/') || '/'))")
        params["area"] = org_path
    async with sessions() as session:
        rows = (await session.execute(text(f"SELECT {COLUMNS} FROM bulletins WHERE {' AND '.join(clauses)} ORDER BY published_at DESC LIMIT :n"), params)).all()
    out = []
    for r in rows:
        item = _bulletin(r)
        item.pop("basis")
        out.append(item)
    return out
