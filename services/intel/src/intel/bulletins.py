"""Safety bulletins: drafted from tip trends or by hand, published as `BulletinPublished` for the channels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.intel import BulletinPublished
from shouwang_shared.envelope import new_event
from shouwang_shared.errors import Conflict, NotFound
from shouwang_shared.outbox import enqueue

from intel.orgunits import area_names
from intel.schemas import BulletinCreate, TrendDraftIn
from intel.trends import rising_trends

COLUMNS = "id, title, body, case_type, channels, audience_org_paths, status, basis, created_by, created_at, published_at"


def _bulletin(r) -> dict:
    return {
        "bulletin_id": str(r.id), "title": r.title, "body": r.body, "case_type": r.case_type, "channels": r.channels,
        "audience_org_paths": r.audience_org_paths, "status": r.status, "basis": r.basis,
        "created_at": r.created_at.isoformat(), "published_at": r.published_at.isoformat() if r.published_at else None,
    }


async def _insert(session: AsyncSession, *, title: str, body: str, case_type: str, channels: list[str], paths: list[str], basis: dict, by: str) -> uuid.UUID:
    bulletin_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO bulletins (id, title, body, case_type, channels, audience_org_paths, basis, created_by)"
            " VALUES (:id, :t, :b, :c, CAST(:ch AS jsonb), CAST(:p AS jsonb), CAST(:basis AS jsonb), :by)"
        ),
        {"id": bulletin_id, "t": title, "b": body, "c": case_type, "ch": orjson.dumps(channels).decode(),
         "p": orjson.dumps(paths).decode(), "basis": orjson.dumps(basis).decode(), "by": by},
    )
    return bulletin_id


async def draft_bulletin(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, body: BulletinCreate) -> dict:
    """Store a hand-written draft for areas in the principal's scope."""
    bad = next((i for i, p in enumerate(body.audience_org_paths) if not principal.covers(p)), None)
    if bad is not None:
        raise NotFound("受众组织不在您的管辖范围内", field=f"audience_org_paths.{bad}")
    async with sessions() as session, session.begin():
        bid = await _insert(session, title=body.title, body=body.body, case_type=body.case_type, channels=list(body.channels),
                            paths=body.audience_org_paths, basis={"source": "manual"}, by=principal.sub)
        row = (await session.execute(text(f"SELECT {COLUMNS} FROM bulletins WHERE id = :id"), {"id": bid})).one()
    return _bulletin(row)


async def draft_from_trends(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, body: TrendDraftIn) -> list[dict]:
    """Drafts for every case type rising in an area of the principal's scope (recent window vs the baseline before it)."""
    now = datetime.now(UTC)
    recent_from = now - timedelta(days=body.days)
    base_from = recent_from - timedelta(days=body.baseline_days)
    out = []
    async with sessions() as session, session.begin():
        rows = (
            await session.execute(
                text(
                    "SELECT category, org_path, count(*) FILTER (WHERE submitted_at >= :rf) AS recent,"
                    " count(*) FILTER (WHERE submitted_at < :rf) AS base FROM tips"
                    " WHERE submitted_at >= :bf GROUP BY category, org_path"
                ),
                {"rf": recent_from, "bf": base_from},
            )
        ).all()
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
            out.append(_bulletin((await session.execute(text(f"SELECT {COLUMNS} FROM bulletins WHERE id = :id"), {"id": bid})).one()))
    return out


async def publish_bulletin(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, bulletin_id: str) -> dict:
    """Publish a draft: `BulletinPublished` goes out with the row in one commit."""
    try:
        bid = uuid.UUID(bulletin_id)
    except ValueError as exc:
        raise NotFound("简报不存在", field="bulletin_id") from exc
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        row = (await session.execute(text(f"SELECT {COLUMNS} FROM bulletins WHERE id = :id FOR UPDATE"), {"id": bid})).first()
        if row is None or not all(principal.covers(p) for p in row.audience_org_paths):
            raise NotFound("简报不存在", field="bulletin_id")
        if row.status == "published":
            raise Conflict("简报已发布", field="status", code="already_published")
        await session.execute(text("UPDATE bulletins SET status = 'published', published_at = :now WHERE id = :id"), {"now": now, "id": bid})
        payload = BulletinPublished(
            bulletin_id=str(bid), title=row.title, body=row.body, case_type=row.case_type, channels=row.channels,
            audience_org_paths=row.audience_org_paths, published_at=now,
        )
        await enqueue(session, new_event(source=BulletinPublished.SOURCE, type=BulletinPublished.TYPE, subject=str(bid), data=payload), topic=BulletinPublished.TOPIC)
        row = (await session.execute(text(f"SELECT {COLUMNS} FROM bulletins WHERE id = :id"), {"id": bid})).one()
    return _bulletin(row)


async def list_drafts(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, limit: int = 100) -> list[dict]:
    """Drafts waiting to be published whose audience lies in the principal's scope, newest first."""
    async with sessions() as session:
        rows = (await session.execute(
            text(f"SELECT {COLUMNS} FROM bulletins WHERE status = 'draft' ORDER BY created_at DESC LIMIT :n"), {"n": 5 * limit},
        )).all()
    return [_bulletin(r) for r in rows if all(principal.covers(p) for p in r.audience_org_paths)][:limit]


async def public_bulletins(
    *, sessions: async_sessionmaker[AsyncSession], case_type: str | None, org_path: str | None, limit: int = 50
) -> list[dict]:
    """Published bulletins, newest first, by case type and area (an area sees bulletins for it and the areas above it)."""
    clauses, params = ["status = 'published'"], {"n": limit}
    if case_type:
        clauses.append("case_type = :ct")
        params["ct"] = case_type
    async with sessions() as session:
        rows = (await session.execute(text(f"SELECT {COLUMNS} FROM bulletins WHERE {' AND '.join(clauses)} ORDER BY published_at DESC LIMIT :n"), params)).all()
    out = []
    for r in rows:
        if org_path and not any(org_path == p or org_path.startswith(p.rstrip("/") + "/") for p in r.audience_org_paths):
            continue
        item = _bulletin(r)
        item.pop("basis")
        out.append(item)
    return out
