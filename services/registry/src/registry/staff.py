"""Staff accounts and roles with an org scope; argon2id password hashes; the gateway's password check.

Every change of an account puts its `StaffAccountState` in the outbox in the same transaction, so the
gateway learns of a deactivation and revokes the account's sessions.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.contracts.registry import StaffAccountState
from shouwang_shared.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable, id_or_404
from shouwang_shared.outbox import enqueue

from registry.access import GRANTABLE_ROLES, ensure_covers, found_in_scope
from registry.orgs import load_unit
from registry.schemas import PasswordCheckCreate, StaffCreate
from registry.tables import PUBLIC_SELECT
from registry.volunteers import public_view

Sessions = async_sessionmaker[AsyncSession]
STAFF_COLUMNS = "id, username, role, display_name, org_unit_id, scope_path, active"
_RECRUITS = text(f"SELECT {PUBLIC_SELECT} FROM volunteers WHERE recruited_by = CAST(:id AS uuid) ORDER BY created_at")

# Roles whose scope is the whole county whatever unit they are attached to.
COUNTY_WIDE = frozenset({"county_admin", "operator", "analyst", "police_liaison"})
# A hash of a random password, verified against when the user is unknown so timing does not tell.
_DUMMY_PASSWORD = uuid.uuid4().hex


@lru_cache(maxsize=4)
def password_hasher(time_cost: int = 3, memory_kib: int = 65536) -> PasswordHasher:
    """An argon2id hasher with the given cost."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return password_hasher(time_cost, memory_kib).hash(_DUMMY_PASSWORD)


def staff_view(row: Any) -> dict:
    """A staff row as the API returns it (never the hash)."""
    out = dict(row)
    out["id"] = str(out["id"])
    out["org_unit_id"] = str(out["org_unit_id"]) if out["org_unit_id"] else None
    return out


async def insert_staff(
    session: AsyncSession, *, data: StaffCreate, unit: Any, root_path: str, hasher: PasswordHasher, staff_id: str | None = None,
) -> Any:
    """Insert one staff account (hashing its password off the event loop); 409 naming `username` when taken."""
    scope = root_path if data.role in COUNTY_WIDE else unit["path"]
    hashed = await asyncio.to_thread(hasher.hash, data.password)
    row = (await session.execute(
        text(f"INSERT INTO staff (id, username, password_hash, role, display_name, org_unit_id, scope_path) "
             f"VALUES (CAST(:id AS uuid), :u, :h, :r, :d, :o, :s) ON CONFLICT (username) DO NOTHING RETURNING {STAFF_COLUMNS}"),
        {"id": staff_id or str(uuid.uuid4()), "u": data.username, "h": hashed, "r": data.role, "d": data.display_name,
         "o": unit["id"], "s": scope},
    )).mappings().first()
    if row is None:
        raise Conflict("用户名已被使用", field="username", code="duplicate_username")
    await publish_staff_state(session, row)
    return row


async def publish_staff_state(session: AsyncSession, row: Any) -> None:
    """Put the account's `StaffAccountState` in the outbox (same transaction as the change)."""
    state = StaffAccountState(staff_id=str(row["id"]), role=row["role"], scope_path=row["scope_path"], active=row["active"],
                              changed_at=datetime.now(UTC))
    await enqueue(session, state, subject=state.staff_id)


async def set_staff_active(*, sessions: Sessions, principal: Principal, staff_id: str, active: bool) -> dict:
    """An admin deactivates (or reactivates) an account of a role they may grant, in their scope."""
    id_or_404(staff_id, field="staff_id", message="工作人员账号不存在")
    async with sessions() as session, session.begin():
        row = found_in_scope(principal, (await session.execute(
            text(f"SELECT {STAFF_COLUMNS} FROM staff WHERE id = CAST(:id AS uuid) FOR UPDATE"), {"id": staff_id}
        )).mappings().first(), path_column="scope_path", field="staff_id", missing="工作人员账号不存在")
        if row["role"] not in GRANTABLE_ROLES.get(principal.role, frozenset()):
            raise Forbidden(f"您不能停用或启用角色为 {row['role']} 的账号", field="staff_id", code="role_forbidden")
        row = (await session.execute(
            text(f"UPDATE staff SET active = :a WHERE id = CAST(:id AS uuid) RETURNING {STAFF_COLUMNS}"),
            {"id": staff_id, "a": active},
        )).mappings().one()
        await publish_staff_state(session, row)
    return staff_view(row)


async def create_staff(*, sessions: Sessions, hasher: PasswordHasher, principal: Principal, data: StaffCreate) -> dict:
    """An admin creates a staff account of a role they may grant, attached to a unit in their scope."""
    grantable = GRANTABLE_ROLES.get(principal.role, frozenset())
    if data.role not in grantable:
        raise Forbidden(f"您不能创建角色为 {data.role} 的账号", field="role", code="role_forbidden")
    async with sessions() as session, session.begin():
        unit = await load_unit(session, data.org_unit_id, status=422)
        ensure_covers(principal, unit["path"], field="org_unit_id")
        root = (await session.execute(text("SELECT path FROM org_units WHERE parent_id IS NULL LIMIT 1"))).scalar()
        if data.role in COUNTY_WIDE and principal.role not in (Role.COUNTY_ADMIN, Role.OPERATOR):
            raise Forbidden("只有县级管理员可以创建全县范围的账号", field="role", code="role_forbidden")
        if data.role == "station_admin" and unit["kind"] != "station":
            raise Unprocessable("站点管理员应隶属于村（社区）站点", field="org_unit_id", code="wrong_unit_kind")
        row = await insert_staff(session, data=data, unit=unit, root_path=root, hasher=hasher)
    return staff_view(row)


async def list_staff(*, sessions: Sessions, principal: Principal) -> list[dict]:
    """Staff accounts whose scope lies inside the principal's scope."""
    if principal.role not in (Role.OPERATOR, Role.COUNTY_ADMIN, Role.TOWN_ADMIN, Role.STATION_ADMIN):
        raise Forbidden("无权查看工作人员账号", field="role", code="role_forbidden")
    prefix = "" if principal.role == Role.OPERATOR else principal.scope_path
    async with sessions() as session:
        rows = (await session.execute(
            text(f"SELECT {STAFF_COLUMNS} FROM staff WHERE scope_path LIKE :like ORDER BY username"), {"like": f"{prefix}%"}
        )).mappings().all()
    return [staff_view(r) for r in rows]


async def own_account(*, sessions: Sessions, principal: Principal) -> dict:
    """The calling staff member's own account (token `sub` = staff id)."""
    id_or_404(principal.sub, field="sub", message="工作人员账号不存在")
    async with sessions() as session:
        row = (await session.execute(
            text(f"SELECT {STAFF_COLUMNS} FROM staff WHERE id = CAST(:id AS uuid)"), {"id": principal.sub}
        )).mappings().first()
    if row is None:
        raise NotFound("工作人员账号不存在", field="sub")
    return staff_view(row)


async def verify_password(*, sessions: Sessions, hasher: PasswordHasher, data: PasswordCheckCreate) -> dict:
    """The staff identity for a correct username and password; 401 otherwise (same answer for unknown users)."""
    async with sessions() as session:
        row = (await session.execute(
            text(f"SELECT {STAFF_COLUMNS}, password_hash FROM staff WHERE username = :u"), {"u": data.username}
        )).mappings().first()
    stored = row["password_hash"] if row and row["active"] else _dummy_hash(hasher.time_cost, hasher.memory_cost)
    try:
        await asyncio.to_thread(hasher.verify, stored, data.password)
        ok = row is not None and row["active"]
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise Unauthorized("用户名或密码错误", field="password", code="bad_credentials")
    return {"staff_id": str(row["id"]), "role": row["role"], "scope_path": row["scope_path"], "display_name": row["display_name"]}


async def recruits_of(*, sessions: Sessions, principal: Principal, staff_id: str) -> dict:
    """The volunteers a grid worker recruited ("one grid worker ↔ x volunteers"), masked."""
    async with sessions() as session:
        id_or_404(staff_id, field="staff_id", message="工作人员不存在")
        worker = (await session.execute(
            text(f"SELECT {STAFF_COLUMNS} FROM staff WHERE id = CAST(:id AS uuid)"), {"id": staff_id}
        )).mappings().first()
        if worker is None:
            raise NotFound("工作人员不存在", field="staff_id")
        if principal.role == Role.GRID_WORKER:
            if principal.sub != str(worker["id"]):
                raise Forbidden("网格员只能查看本人联系的志愿者", field="staff_id", code="not_yours")
        else:
            ensure_covers(principal, worker["scope_path"], field="staff_id")
        rows = (await session.execute(
            _RECRUITS, {"id": staff_id},
        )).mappings().all()
    return {"grid_worker": staff_view(worker), "total": len(rows), "items": [public_view(r) for r in rows]}
