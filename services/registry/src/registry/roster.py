"""Bulk import of volunteer rosters from CSV: per-row validation, encryption, COPY, safe to re-run.

The file must be UTF-8 (a BOM is fine); headers may be English or Chinese. Each row is checked
(line number, field, reason); good rows are encrypted and indexed in a worker thread while the
previous chunk is written, then COPY'd into a staging table and inserted with `ON CONFLICT DO
NOTHING`, so a person already registered (same blind index) is skipped, never duplicated. Every
inserted volunteer gets its `VolunteerState` event in the same transaction.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import SerializedEvent
from shouwang_shared.errors import AppError, Unprocessable
from shouwang_shared.outbox import enqueue_many
from shouwang_shared.pii import PiiCipher

from registry.volunteers import INSERT_COLUMNS, new_volunteer_state_event, seal_identity

Sessions = async_sessionmaker[AsyncSession]

# Canonical column → accepted header spellings.
COLUMNS: dict[str, tuple[str, ...]] = {
    "real_name": ("real_name", "姓名"),
    "national_id": ("national_id", "身份证号", "身份证号码", "公民身份号码"),
    "phone": ("phone", "手机号", "手机号码", "联系电话"),
    "org_unit": ("org_unit", "org_unit_id", "所属组织", "所属站点"),
    "grid": ("grid", "grid_id", "网格"),
    "core": ("core", "骨干"),
    "recruitment_mode": ("recruitment_mode", "招募方式"),
    "service_types": ("service_types", "服务类型"),
    "teams": ("teams", "专业队伍"),
    "skills": ("skills", "技能"),
    "lat": ("lat", "纬度"),
    "lon": ("lon", "经度"),
    "status": ("status", "状态"),
}
REQUIRED = ("real_name", "national_id", "phone", "org_unit")
HEADER_TO_COLUMN = {alias.lower(): name for name, aliases in COLUMNS.items() for alias in aliases}
YES = {"是", "yes", "y", "true", "1", "骨干"}
NO = {"否", "no", "n", "false", "0", "普通", ""}
MODES = {"long_term": "long_term", "长期": "long_term", "emergency": "emergency", "应急": "emergency",
         "短期应急": "emergency", "reserve": "reserve", "储备": "reserve"}
SERVICE_TYPES = {"professional": "professional", "专业": "professional", "专业服务": "professional",
                 "public_welfare": "public_welfare", "公益": "public_welfare", "公益服务": "public_welfare",
                 "governance": "governance", "治理": "governance", "社会治理": "governance"}
STATUSES = {"active": "active", "在册": "active", "正常": "active", "applicant": "applicant", "待审核": "applicant"}
MAX_LIST_ITEMS = 30
MAX_ITEM_LEN = 64
MAX_NAME_LEN = 64
MAX_ROWS = 1_000_000


@dataclass
class RowError:
    """Why one line of the file was not imported."""

    line: int
    field: str
    reason: str


@dataclass
class ImportReport:
    """What an import did: rows read, volunteers imported, people already registered, rows refused."""

    rows: int = 0
    imported: int = 0
    already_registered: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self, *, max_errors: int = 1000) -> dict:
        """The report as JSON-ready data (at most `max_errors` row errors)."""
        return {"rows": self.rows, "imported": self.imported, "already_registered": self.already_registered,
                "error_count": len(self.errors),
                "errors": [e.__dict__ for e in self.errors[:max_errors]]}


@dataclass
class Lookups:
    """Reference data a row is checked against: org units, grids, teams and the importer's scope."""

    units: dict[str, tuple[uuid.UUID, str, str]]  # id or unique name → (id, path, kind)
    grids: dict[tuple[uuid.UUID, str], uuid.UUID]  # (station id, grid id or name) → grid id
    teams: dict[str, str]  # code or Chinese name → code
    scope: Principal | None = None


def decode_roster(raw: bytes) -> str:
    """The text of an uploaded file; 422 naming `file` when it is not UTF-8 (GBK is recognised and named)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        try:
            raw.decode("gb18030")
            hint = "检测到 GBK/GB18030 编码，请在 Excel 中另存为“CSV UTF-8”后重新上传"
        except UnicodeDecodeError:
            hint = "无法识别文件编码"
        raise Unprocessable(f"文件编码应为 UTF-8（第 {exc.start + 1} 字节处）：{hint}", field="file", code="bad_encoding") from exc


def read_header(reader: Iterator[list[str]]) -> list[str | None]:
    """Map the header row to canonical columns; 422 naming `columns` for unknown or missing ones."""
    try:
        header = next(reader)
    except StopIteration as exc:
        raise Unprocessable("文件为空", field="file", code="empty_file") from exc
    except csv.Error as exc:
        raise Unprocessable(f"CSV 格式错误：{exc}", field="file", code="bad_csv") from exc
    mapped = [HEADER_TO_COLUMN.get(h.strip().lower()) for h in header]
    unknown = [h for h, m in zip(header, mapped, strict=True) if m is None and h.strip()]
    if unknown:
        raise Unprocessable(f"无法识别的列：{', '.join(unknown)}", field="columns", code="unknown_columns")
    missing = [c for c in REQUIRED if c not in mapped]
    if missing:
        raise Unprocessable(f"缺少必需的列：{', '.join(missing)}", field="columns", code="missing_columns")
    seen = [m for m in mapped if m]
    if len(seen) != len(set(seen)):
        raise Unprocessable("存在重复的列", field="columns", code="duplicate_columns")
    return mapped


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.replace("；", ";").replace("、", ";").replace(",", ";").split(";") if p.strip()]


class RowRejected(Exception):
    """A row cannot be imported: the field at fault and why."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name, self.reason = field_name, reason


def _coordinate(value: str, name: str, low: float, high: float) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise RowRejected(name, "应为数字") from exc
    if not low <= number <= high:
        raise RowRejected(name, f"应在 {low} 到 {high} 之间")
    return number


def _list(values: dict[str, str], name: str, mapping: dict[str, str] | None = None) -> list[str]:
    items = _split(values.get(name, ""))
    if len(items) > MAX_LIST_ITEMS:
        raise RowRejected(name, f"最多 {MAX_LIST_ITEMS} 项")
    out = []
    for item in items:
        if len(item) > MAX_ITEM_LEN:
            raise RowRejected(name, f"单项不能超过 {MAX_ITEM_LEN} 个字符")
        if mapping is not None:
            if item not in mapping:
                raise RowRejected(name, f"未知的取值：{item}")
            item = mapping[item]
        out.append(item)
    return list(dict.fromkeys(out))


def build_record(values: dict[str, str], *, volunteer_id: uuid.UUID, cipher: PiiCipher, lookups: Lookups, today: date) -> tuple:
    """The stored columns (in `INSERT_COLUMNS` order) of one roster row; raises RowRejected naming the field."""
    name = values.get("real_name", "")
    if not name:
        raise RowRejected("real_name", "不能为空")
    if len(name) > MAX_NAME_LEN:
        raise RowRejected("real_name", f"不能超过 {MAX_NAME_LEN} 个字符")
    try:
        identity = seal_identity(cipher, real_name=name, national_id=values.get("national_id", ""), phone=values.get("phone", ""))
    except AppError as exc:
        raise RowRejected(exc.field or "row", exc.message) from exc
    unit = lookups.units.get(values.get("org_unit", ""))
    if unit is None:
        raise RowRejected("org_unit", "组织单元不存在或名称不唯一")
    unit_id, path, _kind = unit
    if lookups.scope is not None and not lookups.scope.covers(path):
        raise RowRejected("org_unit", "该组织单元不在您的管理范围内")
    grid_id = None
    if values.get("grid"):
        grid_id = lookups.grids.get((unit_id, values["grid"]))
        if grid_id is None:
            raise RowRejected("grid", "该站点下没有这个网格")
    core_text = values.get("core", "").lower()
    if core_text not in YES and core_text not in NO:
        raise RowRejected("core", "应为 是/否")
    mode = MODES.get(values.get("recruitment_mode", "") or "long_term")
    if mode is None:
        raise RowRejected("recruitment_mode", "应为 长期/应急/储备")
    status = STATUSES.get(values.get("status", "") or "active")
    if status is None:
        raise RowRejected("status", "应为 在册/待审核")
    return (
        volunteer_id, identity.real_name, identity.display_name, identity.national_id_enc, identity.national_id_index,
        identity.national_id_masked, identity.phone_enc, identity.phone_index, identity.phone_masked,
        identity.birth_date, identity.gender, unit_id, path, grid_id, None,
        _coordinate(values.get("lat", ""), "lat", -90, 90), _coordinate(values.get("lon", ""), "lon", -180, 180),
        core_text in YES, mode, _list(values, "service_types", SERVICE_TYPES), _list(values, "teams", lookups.teams),
        _list(values, "skills"), "[]", "[]", status, "名册导入", today,
    )


@dataclass
class PreparedChunk:
    """One chunk of rows: records ready for COPY, and the rows refused."""

    records: list[tuple]
    errors: list[RowError]
    rows: int


def prepare_chunk(lines: list[tuple[int, list[str]]], *, header: list[str | None], cipher: PiiCipher, lookups: Lookups,
                  seen: set[str], today: date) -> PreparedChunk:
    """Validate, encrypt and index a chunk of rows (pure CPU; runs in a worker thread)."""
    records, errors = [], []
    width = len(header)
    randomness = os.urandom(16 * len(lines))
    for n, (line, cells) in enumerate(lines):
        if len(cells) != width:
            errors.append(RowError(line, "row", f"列数应为 {width}，实际为 {len(cells)}"))
            continue
        values = {col: cell.strip() for col, cell in zip(header, cells, strict=True) if col}
        try:
            volunteer_id = uuid.UUID(bytes=randomness[16 * n : 16 * n + 16], version=4)
            record = build_record(values, volunteer_id=volunteer_id, cipher=cipher, lookups=lookups, today=today)
        except RowRejected as exc:
            errors.append(RowError(line, exc.field_name, exc.reason))
            continue
        id_index, phone_index = record[4], record[7]
        if id_index in seen:
            errors.append(RowError(line, "national_id", "与文件中前面的行重复"))
            continue
        if phone_index in seen:
            errors.append(RowError(line, "phone", "与文件中前面的行重复"))
            continue
        seen.add(id_index)
        seen.add(phone_index)
        records.append(record)
    return PreparedChunk(records, errors, len(lines))


async def load_lookups(sessions: Sessions, principal: Principal | None) -> Lookups:
    """Org units (by id and by unique name), grids (by id and name per station) and teams."""
    async with sessions() as session:
        units = (await session.execute(text("SELECT id, name, path, kind FROM org_units"))).all()
        grids = (await session.execute(text("SELECT id, name, station_id FROM grids"))).all()
        teams = (await session.execute(text("SELECT code, name FROM teams"))).all()
    by_key: dict[str, tuple[uuid.UUID, str, str]] = {}
    names: dict[str, list[tuple[uuid.UUID, str, str]]] = {}
    for uid, name, path, kind in units:
        entry = (uid, path, kind)
        by_key[str(uid)] = entry
        names.setdefault(name, []).append(entry)
    for name, entries in names.items():
        if len(entries) == 1:
            by_key.setdefault(name, entries[0])
    grid_map = {}
    for gid, name, station in grids:
        grid_map[(station, str(gid))] = gid
        grid_map[(station, name)] = gid
    team_map = {code: code for code, _ in teams} | {name: code for code, name in teams}
    return Lookups(units=by_key, grids=grid_map, teams=team_map, scope=principal)


EVENT_FIELDS = ("id", "display_name", "org_unit_id", "org_path", "grid_id", "lat", "lon", "core", "recruitment_mode",
                "service_types", "teams", "skills", "status", "certificates", "availability")
_POSITION = {name: INSERT_COLUMNS.index(name) for name in EVENT_FIELDS}


def state_events(records: list[tuple], inserted: set[uuid.UUID], at: datetime) -> list[tuple[str, str, SerializedEvent]]:
    """Outbox items with the first `VolunteerState` of each inserted record."""
    items = []
    for record in records:
        if record[0] not in inserted:
            continue
        values = {name: record[i] for name, i in _POSITION.items()}
        values["id"] = str(record[0])
        values["org_unit_id"] = str(values["org_unit_id"])
        values["grid_id"] = str(values["grid_id"]) if values["grid_id"] else None
        values["certificates"] = orjson.loads(values["certificates"])
        values["availability"] = orjson.loads(values["availability"])
        event = new_volunteer_state_event(values=values, at=at)
        items.append((VolunteerState.TOPIC, values["id"], event))
    return items


async def write_chunk(sessions: Sessions, chunk: PreparedChunk) -> tuple[int, int]:
    """COPY a chunk into a staging table, insert new people with their history and events; (imported, skipped)."""
    if not chunk.records:
        return 0, 0
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        await conn.execute("CREATE TEMP TABLE import_stage (LIKE volunteers INCLUDING DEFAULTS) ON COMMIT DROP")
        await conn.copy_records_to_table("import_stage", records=chunk.records, columns=list(INSERT_COLUMNS))
        columns = ", ".join(INSERT_COLUMNS)
        rows = await conn.fetch(
            f"WITH inserted AS (INSERT INTO volunteers ({columns}) SELECT {columns} FROM import_stage "
            f"ON CONFLICT DO NOTHING RETURNING id, status) "
            f"INSERT INTO volunteer_status_changes (volunteer_id, from_status, to_status, reason, changed_by) "
            f"SELECT id, NULL, status, '名册导入', 'import' FROM inserted RETURNING volunteer_id"
        )
        inserted = {r[0] for r in rows}
        if inserted:
            at = datetime.now(UTC)
            events = await asyncio.to_thread(state_events, chunk.records, inserted, at)
            await enqueue_many(session, events)
    return len(inserted), len(chunk.records) - len(inserted)


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]] | RowError]:
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(start, "row", f"CSV 格式错误：{exc}")
            continue
        if any(c.strip() for c in cells):
            yield start, cells


async def import_roster(
    *, sessions: Sessions, cipher: PiiCipher, raw: bytes, principal: Principal | None = None, chunk_size: int = 10_000,
    progress: Callable[[ImportReport], None] | None = None, today: date | None = None,
) -> ImportReport:
    """Import a CSV roster: refuse bad rows with line and field, insert the good ones in bulk, skip people already registered."""
    body = decode_roster(raw)
    reader = csv.reader(io.StringIO(body, newline=""))
    header = read_header(reader)
    lookups = await load_lookups(sessions, principal)
    report = ImportReport()
    seen: set[str] = set()
    today = today or date.today()
    pending: asyncio.Task | None = None

    def chunks() -> Iterator[list[tuple[int, list[str]]]]:
        batch = []
        for item in _numbered(reader):
            if isinstance(item, RowError):
                report.errors.append(item)
                report.rows += 1
                continue
            batch.append(item)
            if len(batch) >= chunk_size:
                yield batch
                batch = []
        if batch:
            yield batch

    async def flush(prepared: PreparedChunk) -> None:
        imported, skipped = await write_chunk(sessions, prepared)
        report.imported += imported
        report.already_registered += skipped
        if progress:
            progress(report)

    for lines in chunks():
        if report.rows + len(lines) > MAX_ROWS:
            raise Unprocessable(f"单个文件最多 {MAX_ROWS} 行", field="file", code="too_many_rows")
        prepared = await asyncio.to_thread(
            prepare_chunk, lines, header=header, cipher=cipher, lookups=lookups, seen=seen, today=today
        )
        report.rows += prepared.rows
        report.errors.extend(prepared.errors)
        if pending is not None:
            await pending
        pending = asyncio.create_task(flush(prepared))
    if pending is not None:
        await pending
    report.errors.sort(key=lambda e: e.line)
    return report
