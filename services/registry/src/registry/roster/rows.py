"""One roster row made ready to store: checked field by field, its identity sealed, as a named record of the
volunteers table, its status history row and its first `VolunteerState` in the outbox. Pure (CPU only)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from operator import itemgetter
from typing import NamedTuple, get_type_hints

import orjson

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.envelope import fast_event_ids
from shouwang_shared.errors import AppError
from shouwang_shared.outbox import OutboxRow, outbox_row
from shouwang_shared.pii import PiiCipher

from registry import copy_binary
from registry.roster.parse import RowError
from registry.schemas import VolunteerPublic
from registry.volunteers import SealedIdentity, number_text, seal_identity

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
IMPORT_REASON, IMPORTED_BY = "名册导入", "import"


# The identity columns are registration's `SealedIdentity`, the placement and profile columns typed as `VolunteerPublic`
# shows them: each is declared once.
_PLACEMENT_AND_PROFILE = ("org_unit_id", "org_path", "grid_id", "recruited_by", "lat", "lon", "core", "recruitment_mode",
                          "service_types", "teams", "skills")
VolunteerRecord = NamedTuple("VolunteerRecord", [
    ("id", str), *get_type_hints(SealedIdentity).items(),
    *((name, VolunteerPublic.model_fields[name].annotation) for name in _PLACEMENT_AND_PROFILE),
    ("certificates", str), ("availability", str),  # JSON text
    ("status", str), ("status_reason", str), ("joined_on", date),
    ("volunteer_number", int | None),  # reserved from `volunteer_number_seq` before the piece is prepared
])
VolunteerRecord.__new__.__defaults__ = (None,)  # the volunteer number, given once the row has passed every check
VolunteerRecord.__doc__ = "A row of the `volunteers` table as an import writes it (field names = COPY's column names)."


class HistoryRow(NamedTuple):
    """The first row of a volunteer's status history (`volunteer_status_changes`)."""

    volunteer_id: str
    from_status: str | None
    to_status: str
    reason: str
    changed_by: str


VOLUNTEER_COLUMNS = VolunteerRecord._fields
HISTORY_COLUMNS = HistoryRow._fields
_b = copy_binary
# How each column is encoded for binary COPY; the columns a roster repeats are encoded once per distinct value.
VOLUNTEER_FIELDS = {
    "id": _b.uuid_text, "real_name": _b.text, "display_name": _b.text, "national_id_enc": _b.bytea,
    "national_id_index": _b.bytea, "national_id_masked": _b.text, "phone_enc": _b.bytea, "phone_index": _b.bytea,
    "phone_masked": _b.text, "birth_date": _b.day, "gender": _b.text, "org_unit_id": _b.uuid_text, "org_path": _b.text,
    "grid_id": _b.uuid_text, "recruited_by": _b.uuid_text, "lat": _b.float8, "lon": _b.float8, "core": _b.boolean,
    "recruitment_mode": _b.text, "service_types": _b.text_array, "teams": _b.text_array, "skills": _b.text_array,
    "certificates": _b.jsonb, "availability": _b.jsonb, "status": _b.text, "status_reason": _b.text, "joined_on": _b.day,
    "volunteer_number": _b.int8,
}
# Remembered only where encoding costs more than a look-up: ids, paths, arrays, JSON.
VOLUNTEER_REPEATING = frozenset({
    "org_unit_id", "org_path", "grid_id", "recruited_by", "service_types", "teams", "skills", "certificates", "availability"})
HISTORY_FIELDS = {"volunteer_id": _b.uuid_text, "from_status": _b.text, "to_status": _b.text, "reason": _b.text, "changed_by": _b.text}
OUTBOX_FIELDS = {"event_id": _b.uuid_text, "topic": _b.text, "key": _b.text, "shard": _b.int2, "payload": _b.bytea}


@dataclass
class Encoders:
    """The binary COPY encoders of one import (each remembers the repeated values it has encoded)."""

    volunteers: _b.RowEncoder = field(default_factory=lambda: _b.RowEncoder(
        VolunteerRecord, VOLUNTEER_FIELDS, VOLUNTEER_REPEATING, lists=frozenset({"service_types", "teams", "skills"})))
    history: _b.RowEncoder = field(default_factory=lambda: _b.RowEncoder(
        HistoryRow, HISTORY_FIELDS, frozenset({"from_status", "to_status", "reason", "changed_by"})))
    outbox: _b.RowEncoder = field(default_factory=lambda: _b.RowEncoder(OutboxRow, OUTBOX_FIELDS, frozenset({"topic"})))


@dataclass
class Lookups:
    """Reference data a row is checked against: org units, grids, teams and the importer's scope."""

    units: dict[str, tuple[str, str, str]]  # id or unique name → (id, path, kind)
    grids: dict[tuple[str, str], str]  # (station id, grid id or name) → grid id
    teams: dict[str, str]  # code or Chinese name → code
    scope: Principal | None = None


class RowRejected(Exception):
    """A row cannot be imported: the field at fault and why."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name, self.reason = field_name, reason


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.replace("；", ";").replace("、", ";").replace(",", ";").split(";") if p.strip()]


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
                 memo: dict | None = None, next_number: Callable[[], int | None] = lambda: None) -> VolunteerRecord:
    """The stored record of one roster row; raises RowRejected naming the field.

    `next_number` gives the volunteer number, asked only once the row has passed every check. `memo` (one per
    import) remembers how list cells already seen were read: rosters repeat them a lot.
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
    lat = _coordinate(values.get("lat", ""), "lat", -90, 90)
    lon = _coordinate(values.get("lon", ""), "lon", -180, 180)
    service_types = _list(values, "service_types", SERVICE_TYPES, memo)
    teams = _list(values, "teams", lookups.teams, memo)
    skills = _list(values, "skills", None, memo)
    return VolunteerRecord(  # positional (in the field order above): this runs once per roster row
        str(volunteer_id), *identity, unit_id, path, grid_id, None, lat, lon, core_text in YES, mode, service_types, teams,
        skills, "[]", "[]", status, IMPORT_REASON, today, next_number(),
    )


def _json_list(serialized: str) -> list:
    return [] if serialized == "[]" else orjson.loads(serialized)  # an import's rows have none


def first_state(record: VolunteerRecord, at: datetime) -> VolunteerState:
    """The first `VolunteerState` of a record with its volunteer number (validated by the contract model)."""
    return VolunteerState(
        volunteer_id=record.id, version=1, volunteer_number=number_text(record.volunteer_number),
        display_name=record.display_name, status=record.status, org_unit_id=str(record.org_unit_id), org_path=record.org_path,
        grid_id=str(record.grid_id) if record.grid_id else None, core=record.core, recruitment_mode=record.recruitment_mode,
        service_types=record.service_types, teams=record.teams, skills=record.skills,
        certificates=_json_list(record.certificates), availability=_json_list(record.availability), lat=record.lat,
        lon=record.lon, updated_at=at)


def state_outbox_row(record: VolunteerRecord, at: datetime, event_id: str | None = None) -> OutboxRow:
    """The outbox row of a record's first `VolunteerState` (`outbox_row`), keyed and sharded by the volunteer."""
    return outbox_row(first_state(record, at), subject=record.id, at=at, event_id=event_id)


@dataclass
class PreparedChunk:
    """One chunk of rows ready to write, and the rows refused.

    Prepared by the import, each good row comes as `people` (volunteer id, identity index, phone index), `lines`,
    and its binary COPY tuples for `volunteers` (`volunteer_rows`, its `VolunteerRecord` with its volunteer number),
    its status history (`history_rows`) and the outbox (`outbox_rows`, its first `VolunteerState`), each set in one
    buffer; `records` (plain stored columns in `INSERT_COLUMNS` order, numbers and events made at write time) is the
    form the demo loader uses.
    """

    records: list[tuple]
    errors: list[RowError]
    rows: int
    lines: list[int] = field(default_factory=list)
    people: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    volunteer_rows: copy_binary.EncodedRows | None = None
    history_rows: copy_binary.EncodedRows | None = None
    outbox_rows: copy_binary.EncodedRows | None = None

    @property
    def prepared(self) -> bool:
        """True for rows prepared by the import, False for the demo's plain records."""
        return self.volunteer_rows is not None

    def keep(self, kept: list[int], errors: list[RowError] | None = None) -> PreparedChunk:
        """The prepared rows at positions `kept` (and `errors` instead of this chunk's, when given)."""
        return replace(self, errors=self.errors if errors is None else errors, lines=[self.lines[n] for n in kept],
                       people=[self.people[n] for n in kept], volunteer_rows=self.volunteer_rows.pick(kept),
                       history_rows=self.history_rows.pick(kept), outbox_rows=self.outbox_rows.pick(kept))


def prepare_chunk(lines: list[tuple[int, list[str]]], *, header: list[str | None], cipher: PiiCipher, lookups: Lookups,
                  today: date, at: datetime, volunteer_numbers: Iterable[int], memo: dict | None = None) -> PreparedChunk:
    """Validate, seal and number a chunk of rows, build their history and first state events, and encode all three
    for binary COPY (pure CPU).

    Each good row takes the next of `volunteer_numbers` (reserved for the piece; a refused row leaves a gap)."""
    errors, numbered, people, volunteer_rows, history_rows, outbox_rows = [], [], [], [], [], []
    next_number = iter(volunteer_numbers).__next__
    width = len(header)
    names = [col for col in header if col]
    cells_of = itemgetter(*[i for i, col in enumerate(header) if col])  # the mapped cells (the 4 required at least)
    memo = {} if memo is None else memo
    encode = memo.get("_encoders") or memo.setdefault("_encoders", Encoders())
    ids = iter(fast_event_ids(2 * len(lines)))  # a volunteer id and an event id per row
    for line, cells in lines:
        if len(cells) != width:
            errors.append(RowError(line, "row", f"列数应为 {width}，实际为 {len(cells)}"))
            continue
        values = dict(zip(names, map(str.strip, cells_of(cells)), strict=False))
        volunteer_id, event_id = next(ids), next(ids)
        try:
            record = build_record(values, volunteer_id=volunteer_id, cipher=cipher, lookups=lookups, today=today, memo=memo,
                                  next_number=next_number)
        except RowRejected as exc:
            errors.append(RowError(line, exc.field_name, exc.reason))
            continue
        numbered.append(line)
        people.append((volunteer_id, record.national_id_index, record.phone_index))
        volunteer_rows.append(encode.volunteers(record))
        history_rows.append(encode.history(HistoryRow(volunteer_id, None, record.status, IMPORT_REASON, IMPORTED_BY)))
        outbox_rows.append(encode.outbox(state_outbox_row(record, at, event_id)))
    join = copy_binary.EncodedRows.join
    return PreparedChunk([], errors, len(lines), numbered, people, join(volunteer_rows), join(history_rows), join(outbox_rows))
