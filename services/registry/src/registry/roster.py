"""Bulk import of volunteer rosters from CSV: per-row validation, encryption, binary COPY, safe to re-run.

The file must be UTF-8 (a BOM is fine); headers may be English or Chinese. The text is cut here into pieces that
end on record boundaries; worker processes parse and prepare each piece (rows checked with line number, field and
reason; encrypted, indexed, their first `VolunteerState` and status history built, all encoded for binary COPY)
while earlier pieces are written, two at a time. A written piece is COPYed straight into `volunteers`, their
history and their outbox rows in one transaction; when a unique index refuses it (people already registered, same
blind index), it rolls back to a savepoint, leaves those people out (skipped, never duplicated) and COPYs the
others. Should a concurrent registration take one of those in between, the piece falls back to a staging table and
`ON CONFLICT DO NOTHING`.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import multiprocessing
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import SerializedEvent, fast_event_ids
from shouwang_shared.errors import AppError, Unprocessable
from shouwang_shared.outbox import enqueue_many, shard_of, wake_relays_after_commit
from shouwang_shared.pii import PiiCipher

from registry import copy_binary
from registry.volunteers import INSERT_COLUMNS, NEXT_NUMBERS_SQL, new_volunteer_state_event, seal_identity

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

    units: dict[str, tuple[str, str, str]]  # id or unique name → (id, path, kind)
    grids: dict[tuple[str, str], str]  # (station id, grid id or name) → grid id
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


def _list(values: dict[str, str], name: str, mapping: dict[str, str] | None = None, memo: dict | None = None) -> list[str]:
    raw = values.get(name, "")
    if memo is not None:
        known = memo.get((name, raw))
        if known is not None:
            if isinstance(known, RowRejected):
                raise known
            return known
    try:
        out = _parse_list(raw, name, mapping)
    except RowRejected as exc:
        if memo is not None:
            memo[(name, raw)] = exc
        raise
    if memo is not None:
        memo[(name, raw)] = out
    return out


def _parse_list(raw: str, name: str, mapping: dict[str, str] | None) -> list[str]:
    items = _split(raw)
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


def build_record(values: dict[str, str], *, volunteer_id: uuid.UUID | str, cipher: PiiCipher, lookups: Lookups, today: date,
                 memo: dict | None = None) -> tuple:
    """The stored columns (in `INSERT_COLUMNS` order) of one roster row; raises RowRejected naming the field.

    `memo` (one per import) remembers how list cells already seen were read: rosters repeat them a lot.
    """
    name = values.get("real_name", "")
    if not name:
        raise RowRejected("real_name", "不能为空")
    if len(name) > MAX_NAME_LEN:
        raise RowRejected("real_name", f"不能超过 {MAX_NAME_LEN} 个字符")
    try:
        identity = seal_identity(cipher, real_name=name, national_id=values.get("national_id", ""), phone=values.get("phone", ""),
                                 today=today)
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
        core_text in YES, mode, _list(values, "service_types", SERVICE_TYPES, memo), _list(values, "teams", lookups.teams, memo),
        _list(values, "skills", None, memo), "[]", "[]", status, IMPORT_REASON, today,
    )


@dataclass
class PreparedChunk:
    """One chunk of rows ready to write, and the rows refused.

    Prepared here, each good row comes as `people` (volunteer id, identity index, phone index), `lines`, and its
    binary COPY tuples for the volunteers table (`copy_rows`), its status history (`history_rows`) and the outbox
    (`outbox_rows`, its first `VolunteerState`), each set in one buffer; `records` (stored columns, events built at
    write time) is the plain form the demo loader uses.
    """

    records: list[tuple]
    errors: list[RowError]
    rows: int
    lines: list[int] | None = None
    people: list[tuple[str, str, str]] | None = None
    copy_rows: copy_binary.EncodedRows | None = None
    history_rows: copy_binary.EncodedRows | None = None
    outbox_rows: copy_binary.EncodedRows | None = None

    def keep(self, kept: list[int], errors: list[RowError] | None = None) -> PreparedChunk:
        """The prepared rows at positions `kept` (and `errors` instead of this chunk's, when given)."""
        return replace(self, records=[], errors=self.errors if errors is None else errors, lines=[self.lines[n] for n in kept],
                       people=[self.people[n] for n in kept], copy_rows=self.copy_rows.pick(kept),
                       history_rows=self.history_rows.pick(kept), outbox_rows=self.outbox_rows.pick(kept))


OUTBOX_COLUMNS = ["event_id", "topic", "key", "shard", "payload"]
# What a prepared row COPYs: the stored columns and the volunteer number, taken from the sequence before the piece is
# prepared so that the first state event can carry it.
COPY_COLUMNS = (*INSERT_COLUMNS, "volunteer_number")
HISTORY_COLUMNS = ["volunteer_id", "from_status", "to_status", "reason", "changed_by"]
IMPORT_REASON, IMPORTED_BY = "名册导入", "import"
_FIELD_COUNT = copy_binary.field_count(len(COPY_COLUMNS))
# Everything of a history row after the volunteer id, per first status: no previous status, the status, why, by whom.
_HISTORY_TAILS = {status: copy_binary.NULL + copy_binary.text(status) + copy_binary.text(IMPORT_REASON) + copy_binary.text(IMPORTED_BY)
                  for status in set(STATUSES.values())}
_HISTORY_HEAD = copy_binary.field_count(len(HISTORY_COLUMNS))
# Where the first state event and the history row find their values in a record.
_ID, _DISPLAY_NAME, _UNIT, _PATH, _GRID, _LAT, _LON, _CORE, _MODE, _SERVICE_TYPES, _TEAMS, _SKILLS, _CERTIFICATES, _AVAILABILITY, _STATUS = (
    INSERT_COLUMNS.index(name) for name in ("id", "display_name", "org_unit_id", "org_path", "grid_id", "lat", "lon", "core",
                                            "recruitment_mode", "service_types", "teams", "skills", "certificates", "availability",
                                            "status"))


def _row_encoder() -> Callable[[tuple, bytes, int], bytes]:
    """A function from a record (in `INSERT_COLUMNS` order), its id's encoded field and its volunteer number to its
    binary COPY tuple (`COPY_COLUMNS`).

    The unit columns and the profile columns after the coordinates repeat across a roster: each distinct run of them
    is encoded once.
    """
    b = copy_binary
    units: dict[tuple, bytes] = {}
    profiles: dict[tuple, bytes] = {}

    def encode(r: tuple, id_field: bytes, number: int) -> bytes:
        unit_key = (r[11], r[12], r[13], r[14])
        unit = units.get(unit_key)
        if unit is None:
            unit = units[unit_key] = b.uuid_text(r[11]) + b.text(r[12]) + b.uuid_text(r[13]) + b.uuid_text(r[14])
        profile_key = (r[17], r[18], tuple(r[19]), tuple(r[20]), tuple(r[21]), r[22], r[23], r[24], r[25], r[26])
        profile = profiles.get(profile_key)
        if profile is None:
            profile = profiles[profile_key] = b"".join((
                b.boolean(r[17]), b.text(r[18]), b.text_array(r[19]), b.text_array(r[20]), b.text_array(r[21]),
                b.jsonb(r[22]), b.jsonb(r[23]), b.text(r[24]), b.text(r[25]), b.day(r[26])))
        return b"".join((
            _FIELD_COUNT, id_field, b.text(r[1]), b.text(r[2]), b.bytea(r[3]), b.text(r[4]), b.text(r[5]),
            b.bytea(r[6]), b.text(r[7]), b.text(r[8]), b.day(r[9]), b.text(r[10]), unit, b.float8(r[15]), b.float8(r[16]),
            profile, b.int8(number)))

    return encode


_OUTBOX_HEAD = copy_binary.field_count(len(OUTBOX_COLUMNS))
_STATE_TOPIC = copy_binary.text(VolunteerState.TOPIC)


def _state_outbox_row(volunteer_id: str, event: SerializedEvent) -> bytes:
    """The outbox row (`OUTBOX_COLUMNS`) of a volunteer's first `VolunteerState`, keyed and sharded by the volunteer."""
    return b"".join((_OUTBOX_HEAD, copy_binary.uuid_text(event.id), _STATE_TOPIC, copy_binary.text(volunteer_id),
                     copy_binary.int2(shard_of(volunteer_id)), copy_binary.bytea(event.payload)))


def prepare_chunk(lines: list[tuple[int, list[str]]], *, header: list[str | None], cipher: PiiCipher, lookups: Lookups,
                  today: date, at: datetime, volunteer_numbers: Iterable[int], memo: dict | None = None) -> PreparedChunk:
    """Validate, encrypt and index a chunk of rows, build their first state events, encode both for COPY (pure CPU).

    Each good row takes the next of `volunteer_numbers` (reserved for the piece; a refused row leaves a gap)."""
    errors, numbers, people, copy_rows, history_rows, outbox_rows = [], [], [], [], [], []
    volunteer_numbers = iter(volunteer_numbers)
    width = len(header)
    names = [col for col in header if col]
    cells_of = itemgetter(*[i for i, col in enumerate(header) if col])  # the mapped cells (the 4 required at least)
    memo = {} if memo is None else memo
    encode = memo.setdefault("_encoder", _row_encoder())
    ids = iter(fast_event_ids(2 * len(lines)))  # a volunteer id and an event id per row
    for line, cells in lines:
        if len(cells) != width:
            errors.append(RowError(line, "row", f"列数应为 {width}，实际为 {len(cells)}"))
            continue
        values = dict(zip(names, map(str.strip, cells_of(cells)), strict=False))
        volunteer_id, event_id = next(ids), next(ids)
        try:
            record = build_record(values, volunteer_id=volunteer_id, cipher=cipher, lookups=lookups, today=today, memo=memo)
        except RowRejected as exc:
            errors.append(RowError(line, exc.field_name, exc.reason))
            continue
        numbers.append(line)
        people.append((volunteer_id, record[4], record[7]))
        id_field = copy_binary.uuid_text(volunteer_id)
        number = next(volunteer_numbers)
        copy_rows.append(encode(record, id_field, number))
        history_rows.append(_HISTORY_HEAD + id_field + _HISTORY_TAILS[record[_STATUS]])
        outbox_rows.append(_state_outbox_row(volunteer_id, first_state_event(record, number, at, event_id)))
    join = copy_binary.EncodedRows.join
    return PreparedChunk([], errors, len(lines), numbers, people, join(copy_rows), join(history_rows), join(outbox_rows))


def drop_repeated_people(chunk: PreparedChunk, seen: set[str]) -> PreparedChunk:
    """Refuse rows whose person or phone came earlier in the file (line and field named); `seen` grows."""
    people = chunk.people or []
    indexes = set(map(itemgetter(1), people))
    indexes.update(map(itemgetter(2), people))
    if len(indexes) == 2 * len(people) and seen.isdisjoint(indexes):
        seen |= indexes  # the usual case: every person and phone in the chunk new
        return chunk
    keep, errors = [], list(chunk.errors)
    for n, (_, id_index, phone_index) in enumerate(people):
        if id_index in seen:
            errors.append(RowError(chunk.lines[n], "national_id", "与文件中前面的行重复"))
        elif phone_index in seen:
            errors.append(RowError(chunk.lines[n], "phone", "与文件中前面的行重复"))
        else:
            seen.add(id_index)
            seen.add(phone_index)
            keep.append(n)
    return chunk.keep(keep, errors)


_worker_context: dict[str, Any] = {}


def _start_worker(cipher: PiiCipher, header: list[str | None], lookups: Lookups, today: date) -> None:
    """Pool initializer: what every piece of this import is checked against (keys included), kept in the worker."""
    _worker_context.update(cipher=cipher, header=header, lookups=lookups, today=today, memo={})


def _start_pool(workers: int, context: tuple) -> ProcessPoolExecutor:
    """Worker processes forked now, with this process's objects frozen out of garbage collection while they fork.

    A child's collections would otherwise walk every object it inherits (a server's whole heap), writing to their
    pages, which the kernel then copies: measured, ~15 % of the workers' CPU.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
                               initargs=context)
    gc.freeze()
    try:
        pool.submit(int)  # with "fork", the first task forks every worker, here
    finally:
        gc.unfreeze()
    return pool


def _prepare_in_worker(first_line: int, piece: str, at: datetime, volunteer_numbers: list[int]) -> PreparedChunk:
    return prepare_piece(first_line, piece, at=at, volunteer_numbers=volunteer_numbers, **_worker_context)


def line_count(text: str) -> int:
    """How many lines the csv module counts in `text` (ended by \\n, \\r\\n or a lone \\r)."""
    returns = text.count("\r")
    return text.count("\n") + (returns - text.count("\r\n") if returns else 0)


def _closes_its_records(piece: str) -> bool:
    """True when `piece`, read from a record's start, ends where a record ends (no quoted field left open)."""
    try:
        for _ in csv.reader(io.StringIO(piece, newline=""), strict=True):
            pass
    except csv.Error:
        return False
    return True


def split_pieces(body: str, start: int, first_line: int, lines_per_piece: int) -> Iterator[tuple[int, str]]:
    """Cut `body` from `start` (a record's start) into pieces of about `lines_per_piece` lines (measured in characters
    at the file's average line length), each ending where a record ends, with the number of each piece's first line.

    A piece without quote marks ends at any line end; one with quote marks grows, by steps that double, until a
    strict reading of it closes every quoted field (a field may hold line breaks), or reaches the end of the file.
    """
    size = len(body)
    step = max(1, (size - start) * lines_per_piece // max(body.count("\n", start), 1))  # characters in that many lines

    def line_end_after(position: int, characters: int) -> int:
        """Just after the first line end at least `characters` on (the end of the text when there is none)."""
        return body.find("\n", position + characters - 1) + 1 or size

    while start < size:
        end, grow = line_end_after(start, step), step
        while end < size and body.find('"', start, end) != -1 and not _closes_its_records(body[start:end]):
            end, grow = line_end_after(end, grow), grow * 2  # doubling: a quote left open costs O(file), not O(file²)
        piece = body[start:end]
        yield first_line, piece
        first_line += line_count(piece)
        start = end


def read_piece(first_line: int, piece: str) -> tuple[list[tuple[int, list[str]]], list[RowError]]:
    """The non-blank records of a piece with their line numbers, and the lines the csv module could not read."""
    if '"' not in piece:  # no quoted field: each line is one record, numbered in turn
        try:
            return [(n, cells) for n, cells in enumerate(csv.reader(io.StringIO(piece, newline="")), first_line)
                    if _has_content(cells)], []
        except csv.Error:
            pass  # a line the csv module refuses (a NUL byte, an oversize field): read again below, to name it
    lines, errors = [], []
    for item in _numbered(csv.reader(io.StringIO(piece, newline="")), first_line):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            lines.append(item)
    return lines, errors


def prepare_piece(first_line: int, piece: str, **context: Any) -> PreparedChunk:
    """Read a piece of the file and prepare its rows (`prepare_chunk`), its unreadable lines among the errors."""
    lines, unreadable = read_piece(first_line, piece)
    chunk = prepare_chunk(lines, **context)
    if unreadable:
        chunk = replace(chunk, errors=unreadable + chunk.errors, rows=chunk.rows + len(unreadable))
    return chunk


async def load_lookups(sessions: Sessions, principal: Principal | None) -> Lookups:
    """Org units (by id and by unique name), grids (by id and name per station) and teams."""
    async with sessions() as session:
        units = (await session.execute(text("SELECT id, name, path, kind FROM org_units"))).all()
        grids = (await session.execute(text("SELECT id, name, station_id FROM grids"))).all()
        teams = (await session.execute(text("SELECT code, name FROM teams"))).all()
    by_key: dict[str, tuple[str, str, str]] = {}
    names: dict[str, list[tuple[str, str, str]]] = {}
    for uid, name, path, kind in units:
        entry = (str(uid), path, kind)  # ids as text: cheap to hand to worker processes, COPY takes them as they are
        by_key[str(uid)] = entry
        names.setdefault(name, []).append(entry)
    for name, entries in names.items():
        if len(entries) == 1:
            by_key.setdefault(name, entries[0])
    grid_map = {}
    for gid, name, station in grids:
        grid_map[(str(station), str(gid))] = str(gid)
        grid_map[(str(station), name)] = str(gid)
    team_map = {code: code for code, _ in teams} | {name: code for code, name in teams}
    return Lookups(units=by_key, grids=grid_map, teams=team_map, scope=principal)


def _json_list(serialized: str) -> list:
    return [] if serialized == "[]" else orjson.loads(serialized)  # an import's rows have none


def first_state_event(record: tuple, volunteer_number: int, at: datetime, event_id: str | None = None) -> SerializedEvent:
    """The first `VolunteerState` of a stored record (`INSERT_COLUMNS` order), serialized without re-validation."""
    grid = record[_GRID]
    return new_volunteer_state_event(
        volunteer_id=str(record[_ID]), volunteer_number=volunteer_number, display_name=record[_DISPLAY_NAME], status=record[_STATUS], org_unit_id=str(record[_UNIT]),
        org_path=record[_PATH], grid_id=str(grid) if grid else None, core=record[_CORE], recruitment_mode=record[_MODE],
        service_types=record[_SERVICE_TYPES], teams=record[_TEAMS], skills=record[_SKILLS],
        certificates=_json_list(record[_CERTIFICATES]), availability=_json_list(record[_AVAILABILITY]), lat=record[_LAT],
        lon=record[_LON], at=at, event_id=event_id)


def state_events(records: list[tuple], inserted: dict[str, int], at: datetime) -> list[tuple[str, str, SerializedEvent]]:
    """Outbox items with the first `VolunteerState` of each inserted record (`inserted`: id → its volunteer number)."""
    return [(VolunteerState.TOPIC, str(r[0]), first_state_event(r, inserted[str(r[0])], at)) for r in records if str(r[0]) in inserted]


async def reserve_numbers(sessions: Sessions, count: int) -> list[int]:
    """`count` volunteer numbers taken from the sequence for a piece about to be prepared."""
    async with sessions() as session:
        conn = await raw_connection(session)
        return [row[0] for row in await conn.fetch(NEXT_NUMBERS_SQL, count)]


async def _stream(parts: Iterable[bytes | memoryview]):
    for part in parts:
        yield part


# Which of a chunk's identity and phone indexes are taken: one index probe each (a plain `= ANY(...)` over a growing
# table turns into a sequential scan). Each list goes as one comma-separated text: hex has no commas, and one text is
# far cheaper to send than a text array.
REGISTERED_SQL = (
    "SELECT f.x FROM unnest(string_to_array($1, ',')) AS f(x) "
    "CROSS JOIN LATERAL (SELECT 1 FROM volunteers v WHERE v.national_id_index = f.x LIMIT 1) AS hit "
    "UNION ALL SELECT f.x FROM unnest(string_to_array($2, ',')) AS f(x) "
    "CROSS JOIN LATERAL (SELECT 1 FROM volunteers v WHERE v.phone_index = f.x LIMIT 1) AS hit"
)


async def write_chunk(sessions: Sessions, chunk: PreparedChunk) -> tuple[int, int]:
    """Insert a chunk's new people with their history and events, skipping people already registered; (imported, skipped)."""
    prepared = chunk.copy_rows is not None
    count = len(chunk.copy_rows) if prepared else len(chunk.records)
    if not count:
        return 0, 0
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        if not prepared:
            inserted = await _insert_through_staging(conn, chunk)
            if inserted:
                events = await asyncio.to_thread(state_events, chunk.records, inserted, datetime.now(UTC))
                await enqueue_many(session, events)
            return len(inserted), count - len(inserted)
        imported = await _copy_skipping_registered(conn, chunk)
        wake_relays_after_commit(session)
    return imported, count - imported


async def _copy_skipping_registered(conn: asyncpg.Connection, chunk: PreparedChunk) -> int:
    """COPY a chunk's people, their history and events, leaving out people already registered; how many were inserted.

    Optimistic: the people of a new roster are all new, so the chunk is COPYed whole. When a unique index refuses it
    (a re-run, an overlapping roster), the COPY rolls back to a savepoint, the chunk looks up which identity and phone
    indexes are taken and COPYs the others. Should someone register one of those in between, the chunk goes through
    the staging table and `ON CONFLICT DO NOTHING`.
    """
    await conn.execute("SAVEPOINT import_copy")
    if await _copied_as_new(conn, chunk):
        return len(chunk.people)
    registered = await conn.fetch(REGISTERED_SQL, ",".join([p[1] for p in chunk.people]), ",".join([p[2] for p in chunk.people]))
    taken = {row[0] for row in registered}
    chunk = chunk.keep([n for n, (_, id_index, phone) in enumerate(chunk.people) if id_index not in taken and phone not in taken])
    if not chunk.people:
        return 0
    if await _copied_as_new(conn, chunk):
        return len(chunk.people)
    inserted = await _insert_through_staging(conn, chunk)
    if inserted:
        await _copy_rows(conn, "outbox", OUTBOX_COLUMNS,
                         chunk.outbox_rows.pick([n for n, person in enumerate(chunk.people) if person[0] in inserted]))
    return len(inserted)


async def _copied_as_new(conn: asyncpg.Connection, chunk: PreparedChunk) -> bool:
    """COPY a chunk's people straight into `volunteers`, their history and the outbox; False, rolled back to the
    `import_copy` savepoint, when a unique index refuses one of them."""
    try:
        await _copy_rows(conn, "volunteers", COPY_COLUMNS, chunk.copy_rows)
        await _copy_rows(conn, "volunteer_status_changes", HISTORY_COLUMNS, chunk.history_rows)
        await _copy_rows(conn, "outbox", OUTBOX_COLUMNS, chunk.outbox_rows)
    except asyncpg.UniqueViolationError:
        await conn.execute("ROLLBACK TO SAVEPOINT import_copy")
        return False
    return True


async def _copy_rows(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: copy_binary.EncodedRows) -> None:
    """One binary COPY of rows already encoded, streamed without joining header, tuples and trailer."""
    await conn.copy_to_table(table, source=_stream(rows.copy_parts()), columns=list(columns), format="binary")


async def _insert_through_staging(conn: asyncpg.Connection, chunk: PreparedChunk) -> dict[str, int]:
    """COPY a chunk into a staging table and insert who is not registered yet, with their history; the ids inserted
    with their volunteer numbers (plain records take theirs from the staging table's default, the sequence)."""
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS import_stage (LIKE volunteers INCLUDING DEFAULTS) ON COMMIT DROP")
    if chunk.copy_rows is not None:
        await _copy_rows(conn, "import_stage", COPY_COLUMNS, chunk.copy_rows)
    else:
        await conn.copy_records_to_table("import_stage", records=chunk.records, columns=list(INSERT_COLUMNS))
    columns = ", ".join(COPY_COLUMNS)
    rows = await conn.fetch(
        f"WITH inserted AS (INSERT INTO volunteers ({columns}) SELECT {columns} FROM import_stage "
        f"ON CONFLICT DO NOTHING RETURNING id, status, volunteer_number), "
        f"history AS (INSERT INTO volunteer_status_changes ({', '.join(HISTORY_COLUMNS)}) "
        f"SELECT id, NULL, status, '{IMPORT_REASON}', '{IMPORTED_BY}' FROM inserted) "
        f"SELECT id, volunteer_number FROM inserted"
    )
    return {str(r[0]): r[1] for r in rows}


def _has_content(cells: list[str]) -> bool:
    """False for a blank record (no cells, or only spaces), which the import passes over."""
    return bool("".join(cells).strip())


def _numbered(reader: Any, first_line: int = 1) -> Iterator[tuple[int, list[str]] | RowError]:
    while True:
        start = first_line + reader.line_num
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(start, "row", f"CSV 格式错误：{exc}")
            continue
        if _has_content(cells):
            yield start, cells


async def import_roster(
    *, sessions: Sessions, cipher: PiiCipher, raw: bytes, principal: Principal | None = None, chunk_size: int = 5_000,
    progress: Callable[[ImportReport], None] | None = None, today: date | None = None, workers: int = 2, writers: int = 2,
) -> ImportReport:
    """Import a CSV roster: refuse bad rows with line and field, insert the good ones in bulk, skip people already registered.

    The file is cut into pieces of `chunk_size` lines, read and prepared (validated, encrypted, indexed, events
    built) by `workers` processes while up to `writers` earlier pieces are written, each in its own transaction; a
    file of one piece, or `workers=0`, is prepared in a thread of this process.
    """
    body = decode_roster(raw)
    lines_in_file = line_count(body)
    if lines_in_file > MAX_ROWS + 1:
        raise Unprocessable(f"单个文件最多 {MAX_ROWS} 行", field="file", code="too_many_rows")
    stream = io.StringIO(body, newline="")
    reader = csv.reader(stream)
    header = read_header(reader)
    pieces = split_pieces(body, stream.tell(), reader.line_num + 1, chunk_size)
    lookups = await load_lookups(sessions, principal)
    report = ImportReport()
    seen: set[str] = set()
    today = today or date.today()
    at = datetime.now(UTC)
    loop = asyncio.get_running_loop()
    pool = None
    if workers > 0 and lines_in_file > chunk_size + 1:
        pool = _start_pool(workers, (cipher, header, lookups, today))
    memo: dict = {}

    async def prepare(first_line: int, piece: str) -> PreparedChunk:
        numbers = await reserve_numbers(sessions, line_count(piece))
        if pool is not None:
            return await loop.run_in_executor(pool, _prepare_in_worker, first_line, piece, at, numbers)
        return await asyncio.to_thread(prepare_piece, first_line, piece, header=header, cipher=cipher, lookups=lookups,
                                       today=today, at=at, volunteer_numbers=numbers, memo=memo)

    async def flush(prepared: PreparedChunk) -> None:
        imported, skipped = await write_chunk(sessions, prepared)
        report.imported += imported
        report.already_registered += skipped
        if progress:
            progress(report)

    in_flight: deque[asyncio.Future] = deque()
    writing: deque[asyncio.Task] = deque()

    async def take_one() -> None:
        prepared = drop_repeated_people(await in_flight.popleft(), seen)
        report.rows += prepared.rows
        report.errors.extend(prepared.errors)
        while len(writing) >= max(writers, 1):
            await writing.popleft()
        writing.append(asyncio.create_task(flush(prepared)))

    try:
        for first_line, piece in pieces:
            in_flight.append(asyncio.ensure_future(prepare(first_line, piece)))
            if len(in_flight) > max(workers, 1):
                await take_one()
        while in_flight:
            await take_one()
        while writing:
            await writing.popleft()
    finally:
        for future in in_flight:
            future.cancel()
        for task in writing:
            task.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    report.errors.sort(key=lambda e: e.line)
    return report
