"""Information columns (信息栏目): the public, read-only columns of the county's online platforms, and the curated
items staff publish in them."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.errors import Conflict, NotFound, Unprocessable, id_or_404

from intel.access import ensure_in_scope, found_in_scope
from intel.outreach import bulletins
from intel.outreach.violations import ViolationLookup, ViolationSystemUnavailable
from intel.schemas import CHINESE_PLATE, NEED_CATEGORY_NAMES, ColumnCreate, ColumnItemCreate

Sessions = async_sessionmaker[AsyncSession]
COLUMN_FIELDS = "id, title, kind, org_path, publisher, description"
_ITEMS_FOR_AREA = text(  # an area sees its own items and those of the areas above it
    "SELECT id, title, body, link, org_path, published_at FROM info_column_items"
    " WHERE column_id = :c AND withdrawn_at IS NULL AND (org_path = :area OR starts_with(:area, rtrim(org_path, '/') || '/'))"
    " ORDER BY published_at DESC LIMIT :n"
)
_PUBLISH_ITEM = text(
    "INSERT INTO info_column_items (id, column_id, title, body, link, org_path, published_by)"
    " VALUES (:id, :c, :t, :b, :l, :p, :by) RETURNING published_at"
)
_LIVE_ITEM_FOR_UPDATE = text(
    "SELECT org_path FROM info_column_items WHERE id = :id AND column_id = :c AND withdrawn_at IS NULL FOR UPDATE"
)
_ADD_COLUMN = text(  # once per column id
    "INSERT INTO info_columns (id, title, kind, publisher, description) VALUES (:id, :t, 'curated', :p, :d)"
    " ON CONFLICT DO NOTHING RETURNING id"
)


def _column(r, county: str) -> dict:
    return {"column_id": r.id, "title": r.title, "kind": r.kind, "org_path": r.org_path or county, "publisher": r.publisher,
            "description": r.description}


async def list_columns(*, sessions: Sessions, county: str) -> list[dict]:
    """Every column, in the platforms' order."""
    async with sessions() as session:
        rows = (await session.execute(text(f"SELECT {COLUMN_FIELDS} FROM info_columns ORDER BY position, id"))).all()
    return [_column(r, county) for r in rows]


async def column_page(*, sessions: Sessions, column_id: str, area: str | None, county: str, limit: int = 50) -> dict:
    """A column with what it shows an area (default: the county): its items, or how to use its form or lookup."""
    area = area or county
    async with sessions() as session:
        row = (await session.execute(text(f"SELECT {COLUMN_FIELDS} FROM info_columns WHERE id = :id"), {"id": column_id})).first()
        if row is None:
            raise NotFound("栏目不存在", field="column_id")
        column = _column(row, county)
        page: dict = {"column": column, "items": []}
        if row.kind == "needs_form":
            page["form"] = {"submit": "POST /api/v1/needs", "categories": NEED_CATEGORY_NAMES}
        elif row.kind == "lookup":
            page["lookup"] = "GET /api/v1/violations?plate=&vin6="
        elif row.kind == "curated":
            items = (await session.execute(_ITEMS_FOR_AREA, {"c": column_id, "area": area, "n": limit})).all()
            page["items"] = [
                {"item_id": str(i.id), "title": i.title, "body": i.body, "link": i.link, "org_path": i.org_path,
                 "publisher": column["publisher"], "published_at": i.published_at}
                for i in items
            ]
    if row.kind == "broadcasts":
        published = await bulletins.public_bulletins(sessions=sessions, case_type=None, org_path=area, limit=limit)
        page["items"] = [
            {"item_id": b["bulletin_id"], "title": b["title"], "body": b["body"], "org_path": b["audience_org_paths"][0] if b["audience_org_paths"] else county,
             "publisher": column["publisher"], "published_at": datetime.fromisoformat(b["published_at"]), "serial_label": b["serial_label"]}
            for b in published
        ]
    return page


async def publish_item(*, sessions: Sessions, principal: Principal, column_id: str, body: ColumnItemCreate) -> dict:
    """Publish an entry in a curated column, for an area in the principal's scope."""
    ensure_in_scope(principal, body.org_path)
    async with sessions() as session, session.begin():
        kind = (await session.execute(text("SELECT kind FROM info_columns WHERE id = :id"), {"id": column_id})).scalar()
        if kind is None:
            raise NotFound("栏目不存在", field="column_id")
        if kind != "curated":
            raise Conflict("该栏目的内容由系统生成，不能手工发布", field="column_id", code="column_not_curated")
        item_id = uuid.uuid4()
        row = (await session.execute(
            _PUBLISH_ITEM,
            {"id": item_id, "c": column_id, "t": body.title, "b": body.body, "l": body.link, "p": body.org_path, "by": principal.sub},
        )).one()
    return {"item_id": str(item_id), "column_id": column_id, "title": body.title, "org_path": body.org_path,
            "published_at": row.published_at}


async def withdraw_item(*, sessions: Sessions, principal: Principal, column_id: str, item_id: str) -> None:
    """Take an entry of a curated column down (it stays on record)."""
    key = id_or_404(item_id, field="item_id", message="条目不存在")
    async with sessions() as session, session.begin():
        row = (await session.execute(_LIVE_ITEM_FOR_UPDATE, {"id": key, "c": column_id})).first()
        found_in_scope(principal, row, field="item_id", message="条目不存在")
        await session.execute(text("UPDATE info_column_items SET withdrawn_at = now() WHERE id = :id"), {"id": key})


async def create_column(*, sessions: Sessions, body: ColumnCreate, county: str) -> dict:
    """Add a curated column of the county's own."""
    async with sessions() as session, session.begin():
        added = (await session.execute(
            _ADD_COLUMN,
            {"id": body.column_id, "t": body.title, "p": body.publisher, "d": body.description})).first()
        if added is None:
            raise Conflict("栏目编号已存在", field="column_id", code="column_exists")
    return {"column_id": body.column_id, "title": body.title, "kind": "curated", "org_path": county, "publisher": body.publisher,
            "description": body.description}


async def look_up_violations(*, system: ViolationLookup | None, plate: str, vin_last6: str) -> dict:
    """A vehicle's violations from the police traffic system, given its plate and the last six characters of its VIN."""
    plate = plate.strip().upper()
    if not re.fullmatch(CHINESE_PLATE, plate):
        raise Unprocessable("号牌号码格式不正确（例：浙A12345）", field="query.plate")
    if not re.fullmatch(r"[A-HJ-NPR-Z0-9]{6}", vin_last6.strip().upper()):
        raise Unprocessable("请填写车辆识别代号（VIN）后六位", field="query.vin6")
    if system is None:
        raise ViolationSystemUnavailable("违章查询尚未接入公安交通管理系统")
    return {"plate": plate, "violations": await system.lookup(plate=plate, vin_last6=vin_last6.strip().upper())}
