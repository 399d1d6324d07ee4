"""Org units and grids: create, move (keeping history and re-pathing the subtree), hierarchy queries."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.contracts.registry import OrgUnitUpserted
from shouwang_shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shouwang_shared.outbox import enqueue_many, outbox_row

from registry.access import ensure_covers
from registry.hierarchy import child_path, depth_of, ids_of, parent_allowed
from registry.schemas import GridCreate, OrgUnitCreate, OrgUnitMoveCreate, OrgUnitUpdate
from registry.tables import PUBLIC_SELECT
from registry.volunteers import publish_states

Sessions = async_sessionmaker[AsyncSession]
UNIT_COLUMNS = "id, name, kind, parent_id, path, depth, lat, lon"
_MOVE_VOLUNTEERS_UNDER = text(  # the volunteers of a moved subtree, with their new paths
    "UPDATE volunteers SET org_path = CAST(:new AS text) || substr(org_path, :cut), version = version + 1, updated_at = now() "
    f"WHERE org_path = :old OR org_path LIKE :like RETURNING {PUBLIC_SELECT}"
)
KIND_ORDER = ("county", "town", "branch", "station")


def unit_view(row: Any) -> dict:
    """An org unit row as the API returns it."""
    out = dict(row)
    out["id"] = str(out["id"])
    out["parent_id"] = str(out["parent_id"]) if out["parent_id"] else None
    return out


def unit_payload(row: Any) -> OrgUnitUpserted:
    """The `OrgUnitUpserted` of an org unit row."""
    view = unit_view(row)
    return OrgUnitUpserted(
        org_unit_id=view["id"], name=view["name"], kind=view["kind"], parent_id=view["parent_id"],
        path=view["path"], lat=view["lat"], lon=view["lon"],
    )


async def publish_units(session: AsyncSession, rows: list[Any]) -> None:
    """Put the `OrgUnitUpserted` of each row in the outbox."""
    await enqueue_many(session, [outbox_row(unit_payload(r), subject=str(r["id"])) for r in rows])


async def load_unit(session: AsyncSession, unit_id: str, *, field: str = "org_unit_id", lock: bool = False, status: int = 404) -> Any:
    """An org unit row; 404 (or 422 for a referenced unit) naming `field` when it does not exist."""
    try:
        uuid.UUID(unit_id)
        row = (await session.execute(
            text(f"SELECT {UNIT_COLUMNS} FROM org_units WHERE id = CAST(:id AS uuid){' FOR UPDATE' if lock else ''}"),
            {"id": unit_id},
        )).mappings().first()
    except ValueError:
        row = None
    if row is None:
        error = NotFound if status == 404 else Unprocessable
        raise error("组织单元不存在", field=field, code="unknown_org_unit")
    return row


async def insert_unit(session: AsyncSession, *, unit_id: str, data: OrgUnitCreate, parent: Any | None) -> Any:
    """Insert an org unit under `parent` and emit it; 409 when a sibling has the same name."""
    path = child_path(parent["path"] if parent else None, unit_id)
    row = (await session.execute(
        text(f"INSERT INTO org_units (id, name, kind, parent_id, path, depth, lat, lon) "
             f"VALUES (CAST(:id AS uuid), :name, :kind, CAST(:parent AS uuid), :path, :depth, :lat, :lon) "
             f"ON CONFLICT DO NOTHING RETURNING {UNIT_COLUMNS}"),
        {"id": unit_id, "name": data.name, "kind": data.kind, "parent": parent["id"] if parent else None,
         "path": path, "depth": depth_of(path), "lat": data.lat, "lon": data.lon},
    )).mappings().first()
    if row is None:
        raise Conflict("同一上级下已有同名组织单元", field="name", code="duplicate_org_unit")
    await publish_units(session, [row])
    return row


async def create_org_unit(*, sessions: Sessions, principal: Principal, data: OrgUnitCreate) -> dict:
    """Create an org unit under a parent in the principal's scope (a county only by a county-wide principal)."""
    async with sessions() as session, session.begin():
        parent = await load_unit(session, data.parent_id, field="parent_id", status=422) if data.parent_id else None
        if not parent_allowed(data.kind, parent["kind"] if parent else None):
            raise Unprocessable(
                f"{data.kind} 类型的组织单元不能隶属于 {parent['kind'] if parent else '（无上级）'}", field="parent_id",
                code="invalid_parent",
            )
        if parent is None:
            if principal.role not in (Role.OPERATOR, Role.COUNTY_ADMIN):
                raise Forbidden("只有县级管理员可以创建县级联盟", field="kind", code="role_forbidden")
            if (await session.execute(text("SELECT 1 FROM org_units WHERE parent_id IS NULL LIMIT 1"))).scalar():
                raise Conflict("县级联盟已存在", field="kind", code="root_exists")
        else:
            ensure_covers(principal, parent["path"], field="parent_id")
        row = await insert_unit(session, unit_id=str(uuid.uuid4()), data=data, parent=parent)
    return unit_view(row)


async def update_org_unit(*, sessions: Sessions, principal: Principal, unit_id: str, data: OrgUnitUpdate) -> dict:
    """Rename a unit in scope or correct its location; emits `OrgUnitUpserted`."""
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        raise Unprocessable("名称不能为空", field="name", code="required")
    async with sessions() as session, session.begin():
        unit = await load_unit(session, unit_id, lock=True)
        ensure_covers(principal, unit["path"], field="org_unit_id")
        if not changes:
            return unit_view(unit)
        assignments = ", ".join(f"{k} = :{k}" for k in changes)
        row = (await session.execute(
            text(f"UPDATE org_units SET {assignments}, updated_at = now() WHERE id = :id "
                 f"AND NOT EXISTS (SELECT 1 FROM org_units o WHERE o.parent_id IS NOT DISTINCT FROM org_units.parent_id "
                 f"AND o.name = :check_name AND o.id <> org_units.id) RETURNING {UNIT_COLUMNS}"),
            {**changes, "id": unit["id"], "check_name": changes.get("name", unit["name"])},
        )).mappings().first()
        if row is None:
            raise Conflict("同一上级下已有同名组织单元", field="name", code="duplicate_org_unit")
        await publish_units(session, [row])
    return unit_view(row)


async def move_org_unit(*, sessions: Sessions, principal: Principal, unit_id: str, data: OrgUnitMoveCreate) -> dict:
    """Move a unit (and its subtree) under a new parent: history row, re-pathed subtree, events for all it touches."""
    async with sessions() as session, session.begin():
        await session.execute(text("LOCK TABLE org_units IN SHARE ROW EXCLUSIVE MODE"))
        unit = await load_unit(session, unit_id, lock=True)
        parent = await load_unit(session, data.new_parent_id, field="new_parent_id", status=422)
        ensure_covers(principal, unit["path"], field="org_unit_id")
        ensure_covers(principal, parent["path"], field="new_parent_id")
        if not parent_allowed(unit["kind"], parent["kind"]):
            raise Unprocessable(f"{unit['kind']} 类型的组织单元不能隶属于 {parent['kind']}", field="new_parent_id", code="invalid_parent")
        old_path = unit["path"]
        if parent["path"] == old_path or parent["path"].startswith(old_path + "/"):
            raise Unprocessable("不能移动到自身或下级单元之下", field="new_parent_id", code="cycle")
        if str(unit["parent_id"]) == str(parent["id"]):
            return unit_view(unit)
        new_path = child_path(parent["path"], str(unit["id"]))
        params = {"old": old_path, "new": new_path, "like": old_path + "/%", "cut": len(old_path) + 1}
        await session.execute(
            text("INSERT INTO org_unit_moves (org_unit_id, old_parent_id, new_parent_id, old_path, new_path, reason, moved_by) "
                 "VALUES (:id, :op, :np, :old, :new, :reason, :by)"),
            {"id": unit["id"], "op": unit["parent_id"], "np": parent["id"], "old": old_path, "new": new_path,
             "reason": data.reason, "by": principal.sub},
        )
        await session.execute(
            text("UPDATE org_units SET parent_id = :pid, updated_at = now() WHERE id = :id"), {"pid": parent["id"], "id": unit["id"]}
        )
        subtree = "(path = :old OR path LIKE :like)"
        moved = (await session.execute(
            text(f"UPDATE org_units SET path = CAST(:new AS text) || substr(path, :cut), "
                 f"depth = depth + :shift, updated_at = now() WHERE {subtree} RETURNING {UNIT_COLUMNS}"),
            {**params, "shift": depth_of(new_path) - depth_of(old_path)},
        )).mappings().all()
        for table, column in (("grids", "org_path"), ("staff", "scope_path"), ("training_sessions", "org_path"), ("invites", "org_path")):
            await session.execute(
                text(f"UPDATE {table} SET {column} = CAST(:new AS text) || substr({column}, :cut) WHERE {column} = :old OR {column} LIKE :like"),
                params,
            )
        volunteers = (await session.execute(
            _MOVE_VOLUNTEERS_UNDER, params,
        )).mappings().all()
        await publish_units(session, moved)
        await publish_states(session, volunteers)
        unit = next(r for r in moved if r["id"] == unit["id"])
    return unit_view(unit)


async def get_org_unit(*, sessions: Sessions, unit_id: str) -> dict:
    """One org unit."""
    async with sessions() as session:
        return unit_view(await load_unit(session, unit_id))


async def subtree(*, sessions: Sessions, principal: Principal, unit_id: str, kind: str | None, max_depth: int | None) -> list[dict]:
    """The unit and everything below it (optionally one kind, or only `max_depth` levels down), by path."""
    async with sessions() as session:
        unit = await load_unit(session, unit_id)
        _ensure_readable(principal, unit["path"])
        where = ["(path = :p OR path LIKE :like)"]
        params: dict[str, Any] = {"p": unit["path"], "like": unit["path"] + "/%"}
        if kind:
            where.append("kind = :kind")
            params["kind"] = kind
        if max_depth is not None:
            where.append("depth <= :d")
            params["d"] = unit["depth"] + max_depth
        rows = (await session.execute(
            text(f"SELECT {UNIT_COLUMNS} FROM org_units WHERE {' AND '.join(where)} ORDER BY depth, name"), params
        )).mappings().all()
    return [unit_view(r) for r in rows]


def _ensure_readable(principal: Principal, path: str) -> None:
    """Staff read the hierarchy inside their scope, and the units above it (their own path to the root)."""
    if principal.covers(path):
        return
    if principal.scope_path and principal.scope_path.startswith(path + "/"):
        return
    raise Forbidden("该对象不在您的管理范围内", field="org_unit_id", code="out_of_scope")


async def path_to_root(*, sessions: Sessions, principal: Principal, unit_id: str) -> list[dict]:
    """The units from the root down to `unit_id`."""
    async with sessions() as session:
        unit = await load_unit(session, unit_id)
        _ensure_readable(principal, unit["path"])
        ids = ids_of(unit["path"])
        rows = (await session.execute(
            text(f"SELECT {UNIT_COLUMNS} FROM org_units WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY depth"), {"ids": ids}
        )).mappings().all()
    return [unit_view(r) for r in rows]


async def counts(*, sessions: Sessions, principal: Principal, unit_id: str) -> dict:
    """How many units of each kind, grids and volunteers (by status) lie in the subtree of a unit."""
    async with sessions() as session:
        unit = await load_unit(session, unit_id)
        _ensure_readable(principal, unit["path"])
        params = {"p": unit["path"], "like": unit["path"] + "/%"}
        by_kind = dict((await session.execute(
            text("SELECT kind, count(*) FROM org_units WHERE path = :p OR path LIKE :like GROUP BY kind"), params
        )).all())
        grids = (await session.execute(text("SELECT count(*) FROM grids WHERE org_path = :p OR org_path LIKE :like"), params)).scalar()
        by_status = dict((await session.execute(
            text("SELECT status, count(*) FROM volunteers WHERE org_path = :p OR org_path LIKE :like GROUP BY status"), params
        )).all())
    return {
        "org_unit_id": str(unit["id"]),
        "units_by_kind": {k: by_kind.get(k, 0) for k in KIND_ORDER},
        "grids": grids,
        "volunteers_by_status": by_status,
        "volunteers": sum(by_status.values()),
    }


async def move_history(*, sessions: Sessions, principal: Principal, unit_id: str) -> list[dict]:
    """Every move of a unit, oldest first."""
    async with sessions() as session:
        unit = await load_unit(session, unit_id)
        _ensure_readable(principal, unit["path"])
        rows = (await session.execute(
            text("SELECT old_parent_id, new_parent_id, old_path, new_path, reason, moved_by, moved_at "
                 "FROM org_unit_moves WHERE org_unit_id = :id ORDER BY id"), {"id": unit["id"]},
        )).mappings().all()
    return [{**r, "old_parent_id": str(r["old_parent_id"]) if r["old_parent_id"] else None, "new_parent_id": str(r["new_parent_id"])} for r in rows]


def grid_view(row: Any) -> dict:
    """A grid row as the API returns it."""
    return {
        "id": str(row["id"]), "name": row["name"], "station_id": str(row["station_id"]), "org_path": row["org_path"],
        "grid_worker_id": str(row["grid_worker_id"]) if row["grid_worker_id"] else None,
    }


async def create_grid(*, sessions: Sessions, principal: Principal, data: GridCreate) -> dict:
    """A grid under a station in scope, optionally with its grid worker (a staff account of that station)."""
    async with sessions() as session, session.begin():
        station = await load_unit(session, data.station_id, field="station_id", status=422)
        if station["kind"] != "station":
            raise Unprocessable("网格只能隶属于村（社区）站点", field="station_id", code="not_a_station")
        ensure_covers(principal, station["path"], field="station_id")
        if data.grid_worker_id:
            worker = (await session.execute(
                text("SELECT role, scope_path FROM staff WHERE id = CAST(:id AS uuid)"), {"id": data.grid_worker_id}
            )).mappings().first()
            if worker is None or worker["role"] != "grid_worker":
                raise Unprocessable("网格员账号不存在", field="grid_worker_id", code="unknown_grid_worker")
        row = (await session.execute(
            text("INSERT INTO grids (id, name, station_id, org_path, grid_worker_id) "
                 "VALUES (:id, :name, :station, :path, CAST(:worker AS uuid)) ON CONFLICT DO NOTHING "
                 "RETURNING id, name, station_id, org_path, grid_worker_id"),
            {"id": uuid.uuid4(), "name": data.name, "station": station["id"], "path": station["path"], "worker": data.grid_worker_id},
        )).mappings().first()
        if row is None:
            raise Conflict("该站点已有同名网格", field="name", code="duplicate_grid")
    return grid_view(row)


async def list_grids(*, sessions: Sessions, principal: Principal, station_id: str | None) -> list[dict]:
    """Grids in the principal's scope (or of one station)."""
    async with sessions() as session:
        if station_id:
            station = await load_unit(session, station_id, field="station_id", status=422)
            path = station["path"]
        else:
            path = principal.scope_path
        if principal.role not in (Role.OPERATOR, Role.SERVICE):
            ensure_covers(principal, path or None, field="station_id")
        rows = (await session.execute(
            text("SELECT id, name, station_id, org_path, grid_worker_id FROM grids WHERE org_path LIKE :like ORDER BY org_path, name"),
            {"like": f"{path}%"},
        )).mappings().all()
    return [grid_view(r) for r in rows]


async def get_grid(session: AsyncSession, grid_id: str, *, field: str = "grid_id", status: int = 404) -> Any:
    """A grid row; 404 (or 422 for a referenced grid) naming `field` when it does not exist."""
    try:
        uuid.UUID(grid_id)
        row = (await session.execute(
            text("SELECT id, name, station_id, org_path, grid_worker_id FROM grids WHERE id = CAST(:id AS uuid)"), {"id": grid_id}
        )).mappings().first()
    except ValueError:
        row = None
    if row is None:
        raise (NotFound if status == 404 else Unprocessable)("网格不存在", field=field, code="unknown_grid")
    return row
