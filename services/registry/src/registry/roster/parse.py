"""Reading a roster file: decoding, header aliases, cutting the text into pieces that end on record boundaries, and
reading a piece's records with their line numbers. Pure."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shouwang_shared.errors import Unprocessable

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
MAX_ROWS = 1_000_000


@dataclass
class RowError:
    """Why one line of the file was not imported."""

    line: int
    field: str
    reason: str


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


@dataclass
class RosterText:
    """A decoded roster: its text, its canonical columns, where the records start and the line they start on."""

    body: str
    header: list[str | None]
    start: int
    first_line: int
    lines: int

    def pieces(self, lines_per_piece: int) -> Iterator[tuple[int, str]]:
        """The records cut into pieces of about `lines_per_piece` lines (`split_pieces`)."""
        return split_pieces(self.body, self.start, self.first_line, lines_per_piece)


def open_roster(raw: bytes) -> RosterText:
    """Decode a roster and read its header; 422 naming `file` or `columns` when it cannot be imported at all."""
    body = decode_roster(raw)
    lines = line_count(body)
    if lines > MAX_ROWS + 1:
        raise Unprocessable(f"单个文件最多 {MAX_ROWS} 行", field="file", code="too_many_rows")
    stream = io.StringIO(body, newline="")
    reader = csv.reader(stream)
    header = read_header(reader)
    return RosterText(body, header, stream.tell(), reader.line_num + 1, lines)


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
