"""Volunteer use cases: register, read (masked), update, status changes, reveal, look-ups. Each owns its transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.errors import Conflict, Forbidden, NotFound, Unprocessable, id_or_404
from shouwang_shared.outbox import enqueue_many, outbox_row
from shouwang_shared.pii import PiiCipher, mask_name, mask_phone

from registry.access import REVEALERS, VOLUNTEER_READERS, ensure_covers, found_in_scope
from registry.cards import REVOKING_STATUSES, revoke_cards
from registry.national_id import InvalidNationalId, InvalidPhone, age_band, mask_national_id, normalise_phone, parse_national_id
from registry.schemas import RevealCreate, VolunteerBase, VolunteerCreate, VolunteerUpdate
from registry.tables import INSERT_COLUMNS, PUBLIC_SELECT

Sessions = async_sessionmaker[AsyncSession]
_VOLUNTEER = text(f"SELECT {PUBLIC_SELECT} FROM volunteers WHERE id = CAST(:id AS uuid)")
_VOLUNTEER_FOR_UPDATE = text(f"SELECT {PUBLIC_SELECT} FROM volunteers WHERE id = CAST(:id AS uuid) FOR UPDATE")

# Allowed status transitions: from → {to}.
TRANSITIONS: dict[str, frozenset[str]] = {
    "applicant": frozenset({"active", "retired"}),
    "active": frozenset({"suspended", "retired"}),
    "suspended": frozenset({"active", "retired"}),
    "retired": frozenset(),
}

stored_index = bytes.fromhex  # a blind index (hex) as its column stores it: 32 bytes


class SealedIdentity(NamedTuple):
    """A person's identity ready to store: encrypted, indexed and masked; nothing plain but the name."""

    real_name: str
    display_name: str
    national_id_enc: bytes
    national_id_index: bytes  # the blind index's 32-byte digest (bytea, migration 0009)
    national_id_masked: str
    phone_enc: bytes
    phone_index: bytes
    phone_masked: str
    birth_date: date
    gender: str


def seal_identity(cipher: PiiCipher, *, real_name: str, national_id: str, phone: str, today: date | None = None) -> SealedIdentity:
    """Validate the identity number and phone, then encrypt, index and mask them (raises with the field at fault)."""
    try:
        parsed = parse_national_id(national_id, today=today)
    except InvalidNationalId as exc:
        raise Unprocessable(str(exc), field="national_id", code="invalid_national_id") from exc
    try:
        mobile = normalise_phone(phone)
    except InvalidPhone as exc:
        raise Unprocessable(str(exc), field="phone", code="invalid_phone") from exc
    number = parsed.number
    return SealedIdentity(  # positional: this runs once per roster row
        real_name, mask_name(real_name),
        cipher.encrypt(number, context="national_id"), stored_index(cipher.blind_index(number, context="national_id")),
        mask_national_id(number), cipher.encrypt(mobile, context="phone"), stored_index(cipher.blind_index(mobile, context="phone")),
        mask_phone(mobile),
        parsed.birth_date, "male" if parsed.male else "female",
    )


def phone_index(cipher: PiiCipher, phone: str) -> bytes:
    """The blind index of a phone number as stored (422 naming `phone` when it is not a mobile number)."""
    try:
        return stored_index(cipher.blind_index(normalise_phone(phone), context="phone"))
    except InvalidPhone as exc:
        raise Unprocessable(str(exc), field="phone", code="invalid_phone") from exc


def state_payload(row: Any) -> VolunteerState:
    """The `VolunteerState` of a stored volunteer row (masked name, no identity numbers)."""
    return VolunteerState(
        volunteer_id=str(row["id"]), version=row["version"], volunteer_number=number_text(row["volunteer_number"]),
        display_name=row["display_name"],
        status=row["status"], org_unit_id=str(row["org_unit_id"]), org_path=row["org_path"],
        grid_id=str(row["grid_id"]) if row["grid_id"] else None, core=row["core"],
        recruitment_mode=row["recruitment_mode"], service_types=list(row["service_types"]),
        teams=list(row["teams"]), skills=list(row["skills"]), certificates=row["certificates"],
        lat=row["lat"], lon=row["lon"], availability=row["availability"],
        training_compliant=row["training_compliant"], specialised_eligible=row["specialised_eligible"],
        star=row["star"], updated_at=row["updated_at"],
    )


def number_text(volunteer_number: int | None) -> str | None:
    """A volunteer number as people read it: eight digits, zero-padded."""
    return None if volunteer_number is None else f"{volunteer_number:08d}"


def first_state(values: dict[str, Any], *, certificates: list[Any], availability: list[Any]) -> VolunteerState:
    """The first `VolunteerState` of a volunteer about to be inserted with column `values` (version 1, one star)."""
    return VolunteerState(
        volunteer_id=str(values["id"]), version=1, volunteer_number=number_text(values["volunteer_number"]),
        display_name=values["display_name"], status=values["status"], org_unit_id=str(values["org_unit_id"]),
        org_path=values["org_path"], grid_id=str(values["grid_id"]) if values["grid_id"] else None, core=values["core"],
        recruitment_mode=values["recruitment_mode"], service_types=values["service_types"], teams=values["teams"],
        skills=values["skills"], certificates=certificates, availability=availability, lat=values["lat"], lon=values["lon"],
        updated_at=values["updated_at"],
    )


async def publish_states(session: AsyncSession, rows: list[Any]) -> None:
    """Put the `VolunteerState` of each row in the outbox (same transaction as the change)."""
    await enqueue_many(session, [outbox_row(state_payload(r), subject=str(r["id"])) for r in rows])


def public_view(row: Any) -> dict:
    """A stored row as the API returns it (ids as strings; identity numbers already masked; an age band, never the
    birth date, which with the mask would narrow the number down: the birth date is for an audited reveal only)."""
    out = dict(row)
    for key in ("id", "org_unit_id", "grid_id", "recruited_by"):
        if out.get(key) is not None:
            out[key] = str(out[key])
    out.pop("updated_at", None)
    out["volunteer_number"] = number_text(out["volunteer_number"])
    out["age_band"] = age_band(out.pop("birth_date"), date.today())
    return out


async def org_unit_path(session: AsyncSession, org_unit_id: str, *, field: str = "org_unit_id") -> str:
    """The materialized path of an org unit; 422 naming `field` when it does not exist."""
    path = (await session.execute(text("SELECT path FROM org_units WHERE id = CAST(:id AS uuid)"), {"id": org_unit_id})).scalar()
    if path is None:
        raise Unprocessable("组织单元不存在", field=field, code="unknown_org_unit")
    return path


async def check_grid(session: AsyncSession, grid_id: str | None, org_unit_id: str) -> None:
    """A grid given with a volunteer must exist and belong to the volunteer's home station."""
    if grid_id is None:
        return
    station = (await session.execute(text("SELECT station_id FROM grids WHERE id = CAST(:id AS uuid)"), {"id": grid_id})).scalar()
    if station is None:
        raise Unprocessable("网格不存在", field="grid_id", code="unknown_grid")
    if str(station) != str(org_unit_id):
        raise Unprocessable("网格不属于该志愿者所在的站点", field="grid_id", code="grid_mismatch")


async def check_teams(session: AsyncSession, teams: list[str]) -> None:
    """Every team code must be one of the seeded specialised teams."""
    if not teams:
        return
    known = set((await session.execute(text("SELECT code FROM teams WHERE code = ANY(:c)"), {"c": list(teams)})).scalars())
    unknown = [t for t in teams if t not in known]
    if unknown:
        raise Unprocessable(f"未知的专业队伍：{', '.join(unknown)}", field="teams", code="unknown_team")


def profile_values(profile: VolunteerBase) -> dict:
    """The profile part of a volunteer's columns."""
    return {
        "lat": profile.lat, "lon": profile.lon, "core": profile.core, "recruitment_mode": profile.recruitment_mode,
        "service_types": list(dict.fromkeys(profile.service_types)), "teams": list(dict.fromkeys(profile.teams)),
        "skills": list(dict.fromkeys(profile.skills)),
        "certificates": orjson.dumps([c.model_dump(mode="json") for c in profile.certificates]).decode(),
        "availability": orjson.dumps([a.model_dump(mode="json") for a in profile.availability]).decode(),
    }


async def insert_volunteer(
    session: AsyncSession, *, identity: SealedIdentity, profile: VolunteerBase, org_unit_id: str, org_path: str,
    grid_id: str | None, recruited_by: str | None, status: str, changed_by: str,
) -> Any:
    """Insert one volunteer with its status history and state event; 409 naming the field on a duplicate person."""
    values = {
        "id": str(uuid.uuid4()), **identity._asdict(), "org_unit_id": org_unit_id, "org_path": org_path,
        "grid_id": grid_id, "recruited_by": recruited_by, **profile_values(profile), "status": status,
        "status_reason": "", "joined_on": date.today(),
    }
    columns = ", ".join(INSERT_COLUMNS)
    params = ", ".join(
        f"CAST(:{c} AS jsonb)" if c in ("certificates", "availability") else
        f"CAST(:{c} AS uuid)" if c in ("id", "org_unit_id", "grid_id", "recruited_by") else f":{c}"
        for c in INSERT_COLUMNS
    )
    row = (await session.execute(
        text(f"WITH inserted AS (INSERT INTO volunteers ({columns}) VALUES ({params}) ON CONFLICT DO NOTHING "
             f"RETURNING {PUBLIC_SELECT}), history AS (INSERT INTO volunteer_status_changes "
             f"(volunteer_id, from_status, to_status, reason, changed_by) SELECT id, NULL, status, '登记', :changed_by FROM inserted) "
             f"SELECT * FROM inserted"),
        {**values, "changed_by": changed_by},
    )).mappings().first()
    if row is None:
        taken = (await session.execute(
            text("SELECT national_id_index = :n FROM volunteers WHERE national_id_index = :n OR phone_index = :p LIMIT 1"),
            {"n": identity.national_id_index, "p": identity.phone_index},
        )).scalar()
        if taken:
            raise Conflict("该身份证号码已登记为志愿者", field="national_id", code="duplicate_volunteer")
        raise Conflict("该手机号码已被其他志愿者使用", field="phone", code="duplicate_phone")
    await publish_states(session, [row])
    return row


async def register_volunteer(*, sessions: Sessions, cipher: PiiCipher, principal: Principal, data: VolunteerCreate) -> dict:
    """Staff register a volunteer (as an applicant) in a unit of their scope."""
    identity = seal_identity(cipher, real_name=data.real_name, national_id=data.national_id, phone=data.phone)
    async with sessions() as session, session.begin():
        path = await org_unit_path(session, data.org_unit_id)
        ensure_covers(principal, path, field="org_unit_id")
        await check_grid(session, data.grid_id, data.org_unit_id)
        await check_teams(session, data.teams)
        recruiter = await _staff_id(session, principal)
        row = await insert_volunteer(
            session, identity=identity, profile=data, org_unit_id=data.org_unit_id, org_path=path,
            grid_id=data.grid_id, recruited_by=recruiter, status="applicant", changed_by=principal.sub,
        )
    return public_view(row)


async def _staff_id(session: AsyncSession, principal: Principal) -> str | None:
    """The staff account id behind a principal, when its subject is one."""
    try:
        uuid.UUID(principal.sub)
    except ValueError:
        return None
    found = (await session.execute(text("SELECT id FROM staff WHERE id = CAST(:id AS uuid)"), {"id": principal.sub})).scalar()
    return str(found) if found else None


async def _load(session: AsyncSession, volunteer_id: str, *, lock: bool = False) -> Any:
    id_or_404(volunteer_id, field="volunteer_id", message="志愿者不存在")
    row = (await session.execute(
        _VOLUNTEER_FOR_UPDATE if lock else _VOLUNTEER,
        {"id": volunteer_id},
    )).mappings().first()
    if row is None:
        raise NotFound("志愿者不存在", field="volunteer_id")
    return row


async def get_volunteer(*, sessions: Sessions, principal: Principal, volunteer_id: str) -> dict:
    """One volunteer, masked, if the principal's scope covers their home unit (or it is the volunteer themself)."""
    async with sessions() as session:
        row = await _load(session, volunteer_id)
    if principal.role == Role.VOLUNTEER:
        if principal.volunteer_id != str(row["id"]):
            raise Forbidden("志愿者只能查看本人信息", field="volunteer_id", code="not_yours")
    elif principal.role not in VOLUNTEER_READERS:
        raise Forbidden(f"角色 {principal.role} 无权查看志愿者信息", field="role", code="role_forbidden")
    else:
        ensure_covers(principal, row["org_path"], field="volunteer_id")
    return public_view(row)


@dataclass(frozen=True)
class RosterTraits:
    """What a roster can be narrowed by beyond place and status (None: any)."""

    team: str | None = None
    skill: str | None = None
    training: str | None = None  # compliant | behind
    star: int | None = None
    core: bool | None = None

    def clauses(self) -> tuple[list[str], dict[str, Any]]:
        """SQL conditions on `volunteers` and their parameters."""
        where, params = [], {}
        if self.team:
            where.append(":team = ANY(teams)")
            params["team"] = self.team
        if self.skill:
            where.append(":skill = ANY(skills)")
            params["skill"] = self.skill
        if self.training:
            where.append("training_compliant = :compliant")
            params["compliant"] = self.training == "compliant"
        if self.star is not None:
            where.append("star = :star")
            params["star"] = self.star
        if self.core is not None:
            where.append("core = :core")
            params["core"] = self.core
        return where, params


async def list_volunteers(
    *, sessions: Sessions, principal: Principal, org_unit_id: str | None, status: str | None, grid_id: str | None,
    recruited_by: str | None, limit: int, offset: int, traits: RosterTraits = RosterTraits(),
) -> dict:
    """Volunteers under an org unit (the principal's whole scope by default), masked, newest first."""
    async with sessions() as session:
        if org_unit_id:
            path = await org_unit_path(session, org_unit_id)
            ensure_covers(principal, path, field="org_unit_id")
        else:
            path = principal.scope_path if principal.role not in (Role.OPERATOR, Role.SERVICE) else ""
            if not path and principal.role not in (Role.OPERATOR, Role.SERVICE):
                raise Forbidden("没有组织范围", field="scope", code="no_scope")
        where = ["org_path LIKE :prefix"]
        params: dict[str, Any] = {"prefix": _like_prefix(path), "limit": limit, "offset": offset}
        if status:
            where.append("status = :status")
            params["status"] = status
        if grid_id:
            where.append("grid_id = CAST(:grid AS uuid)")
            params["grid"] = grid_id
        if recruited_by:
            where.append("recruited_by = CAST(:recruiter AS uuid)")
            params["recruiter"] = recruited_by
        more, more_params = traits.clauses()
        where += more
        params.update(more_params)
        clause = " AND ".join(where)
        total = (await session.execute(text(f"SELECT count(*) FROM volunteers WHERE {clause}"), params)).scalar()
        rows = (await session.execute(
            text(f"SELECT {PUBLIC_SELECT} FROM volunteers WHERE {clause} ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset"),
            params,
        )).mappings().all()
    return {"total": total, "items": [public_view(r) for r in rows]}


def _like_prefix(path: str) -> str:
    """A LIKE pattern matching `path` and everything below it (paths hold only ids and slashes)."""
    return f"{path}%" if path else "%"


async def update_volunteer(*, sessions: Sessions, principal: Principal, volunteer_id: str, data: VolunteerUpdate) -> dict:
    """Change profile fields of a volunteer in scope (and to a new home in scope); emits the new state."""
    changes = data.model_dump(exclude_unset=True)
    for key in ("org_unit_id", "core", "recruitment_mode"):
        if key in changes and changes[key] is None:
            raise Unprocessable("该字段不能为空", field=key, code="required")
    for key in ("service_types", "teams", "skills", "certificates", "availability"):
        if key in changes and changes[key] is None:
            changes[key] = []
    async with sessions() as session, session.begin():
        row = await _load(session, volunteer_id, lock=True)
        ensure_covers(principal, row["org_path"], field="volunteer_id")
        sets: dict[str, Any] = {}
        org_unit_id = changes.get("org_unit_id", str(row["org_unit_id"]))
        if "org_unit_id" in changes:
            sets["org_path"] = await org_unit_path(session, org_unit_id)
            ensure_covers(principal, sets["org_path"], field="org_unit_id")
            sets["org_unit_id"] = org_unit_id
            if "grid_id" not in changes:
                sets["grid_id"] = None
        if "grid_id" in changes:
            await check_grid(session, changes["grid_id"], org_unit_id)
            sets["grid_id"] = changes["grid_id"]
        if "teams" in changes:
            await check_teams(session, changes["teams"])
        for key in ("lat", "lon", "core", "recruitment_mode", "service_types", "teams", "skills"):
            if key in changes:
                sets[key] = changes[key]
        for key in ("certificates", "availability"):
            if key in changes:
                sets[key] = orjson.dumps(changes[key]).decode()
        row = await _apply(session, volunteer_id, sets)
    return public_view(row)


async def _apply(session: AsyncSession, volunteer_id: str, sets: dict[str, Any]) -> Any:
    """Update columns of a volunteer, bump its version and emit the new state."""
    casts = {"certificates": "jsonb", "availability": "jsonb", "org_unit_id": "uuid", "grid_id": "uuid"}
    assignments = [f"{k} = CAST(:{k} AS {casts[k]})" if k in casts else f"{k} = :{k}" for k in sets]
    assignments += ["version = version + 1", "updated_at = now()"]
    row = (await session.execute(
        text(f"UPDATE volunteers SET {', '.join(assignments)} WHERE id = CAST(:vid AS uuid) RETURNING {PUBLIC_SELECT}"),
        {**sets, "vid": volunteer_id},
    )).mappings().one()
    await publish_states(session, [row])
    return row


async def change_status(*, sessions: Sessions, principal: Principal, volunteer_id: str, to_status: str, reason: str) -> dict:
    """Move a volunteer along applicant → active → suspended / retired, recording who and why; suspending or retiring
    revokes their cards in the same transaction."""
    async with sessions() as session, session.begin():
        row = await _load(session, volunteer_id, lock=True)
        ensure_covers(principal, row["org_path"], field="volunteer_id")
        if to_status not in TRANSITIONS[row["status"]]:
            raise Conflict(f"志愿者当前状态为 {row['status']}，不能变更为 {to_status}", field="status", code="invalid_transition")
        await session.execute(
            text("INSERT INTO volunteer_status_changes (volunteer_id, from_status, to_status, reason, changed_by) "
                 "VALUES (CAST(:v AS uuid), :f, :t, :r, :by)"),
            {"v": volunteer_id, "f": row["status"], "t": to_status, "r": reason, "by": principal.sub},
        )
        row = await _apply(session, volunteer_id, {"status": to_status, "status_reason": reason})
        if to_status in REVOKING_STATUSES:
            await revoke_cards(session, volunteer_id=volunteer_id, reason=f"{to_status}: {reason}")
    return public_view(row)


async def status_history(*, sessions: Sessions, principal: Principal, volunteer_id: str) -> list[dict]:
    """The status changes of a volunteer in scope, oldest first."""
    async with sessions() as session:
        row = await _load(session, volunteer_id)
        ensure_covers(principal, row["org_path"], field="volunteer_id")
        rows = (await session.execute(
            text("SELECT from_status, to_status, reason, changed_by, changed_at FROM volunteer_status_changes "
                 "WHERE volunteer_id = CAST(:v AS uuid) ORDER BY id"), {"v": volunteer_id},
        )).mappings().all()
    return [dict(r) for r in rows]


async def reveal_identity(*, sessions: Sessions, cipher: PiiCipher, principal: Principal, volunteer_id: str, data: RevealCreate) -> dict:
    """Decrypt a volunteer's identity numbers (or give the birth date) for a privileged role, writing an audit row in the
    same transaction."""
    if principal.role not in REVEALERS:
        raise Forbidden("只有县级管理员或运维人员可以查看完整身份信息", field="role", code="role_forbidden")
    id_or_404(volunteer_id, field="volunteer_id", message="志愿者不存在")
    async with sessions() as session, session.begin():
        row = found_in_scope(principal, (await session.execute(
            text("SELECT id, org_path, national_id_enc, phone_enc, birth_date FROM volunteers WHERE id = CAST(:id AS uuid)"),
            {"id": volunteer_id},
        )).mappings().first(), path_column="org_path", field="volunteer_id", missing="志愿者不存在")
        await session.execute(
            text("INSERT INTO pii_reveals (volunteer_id, fields, reason, revealed_by, role) VALUES (:v, :f, :r, :by, :role)"),
            {"v": row["id"], "f": list(data.fields), "r": data.reason, "by": principal.sub, "role": str(principal.role)},
        )
    out: dict[str, Any] = {"volunteer_id": volunteer_id}
    if "national_id" in data.fields:
        out["national_id"] = cipher.decrypt(row["national_id_enc"], context="national_id")
    if "phone" in data.fields:
        out["phone"] = cipher.decrypt(row["phone_enc"], context="phone")
    if "birth_date" in data.fields:
        out["birth_date"] = row["birth_date"]
    return out


async def find_by_phone(*, sessions: Sessions, cipher: PiiCipher, phone: str) -> dict:
    """The volunteer registered with `phone` (for the gateway's one-time-code login); 404 when none."""
    index = phone_index(cipher, phone)
    async with sessions() as session:
        row = (await session.execute(
            text("SELECT id, status, display_name, org_path FROM volunteers WHERE phone_index = :p"), {"p": index},
        )).mappings().first()
    if row is None:
        raise NotFound("该手机号未登记为志愿者", field="phone", code="unknown_phone")
    return {"volunteer_id": str(row["id"]), "status": row["status"], "display_name": row["display_name"], "org_path": row["org_path"]}


async def own_profile(*, sessions: Sessions, principal: Principal) -> dict:
    """The calling volunteer's own profile (masked), star included."""
    if principal.role != Role.VOLUNTEER or not principal.volunteer_id:
        raise Forbidden("仅限志愿者本人访问", field="role", code="role_forbidden")
    async with sessions() as session:
        row = await _load(session, principal.volunteer_id)
    return public_view(row)


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
