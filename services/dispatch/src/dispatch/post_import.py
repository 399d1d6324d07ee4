"""Bulk post loads from CSV or JSON (pure): rows become validated posts, or a 422 naming the row and column."""

from __future__ import annotations

import csv
import io

import orjson
from pydantic import TypeAdapter, ValidationError

from shouwang_shared.errors import Unprocessable
from shouwang_shared.validation_text import chinese_reason

from dispatch.schemas import PostBase

LIST_COLUMNS = ("required_skills", "required_teams", "required_certificates")
_POSTS = TypeAdapter(list[PostBase])


def _unprocessable(exc: ValidationError, *, offset: int = 0) -> Unprocessable:
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0].isdigit():
        head = f"posts[{int(loc[0]) + offset}]"
        field = ".".join([head, *loc[1:]]) if len(loc) > 1 else head
    else:
        field = ".".join(["posts", *loc])
    return Unprocessable(f"{field}: {chinese_reason(first)}", field=field)


def posts_from_json(raw: bytes) -> list[PostBase]:
    """Posts from a JSON array (or an object with `posts`)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Unprocessable(f"JSON 无法解析 (malformed JSON): {exc}", field="body") from exc
    if isinstance(data, dict):
        data = data.get("posts")
    if not isinstance(data, list):
        raise Unprocessable("需要岗位数组 (expected a list of posts)", field="posts")
    try:
        return _POSTS.validate_python(data)
    except ValidationError as exc:
        raise _unprocessable(exc) from exc


def posts_from_csv(raw: bytes) -> list[PostBase]:
    """Posts from CSV with a header row; list columns separate codes with `;` or `|`, empty cells mean the default."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable("CSV 必须是 UTF-8 编码 (CSV must be UTF-8)", field="body") from exc
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        clean = {}
        for key, value in row.items():
            if key is None:
                raise Unprocessable(f"第 {reader.line_num} 行列数过多 (too many cells on line {reader.line_num})", field=f"posts[{len(rows)}]")
            key = key.strip()
            value = (value or "").strip()
            if value == "":
                continue
            if key in LIST_COLUMNS:
                clean[key] = [code.strip() for code in value.replace("|", ";").split(";") if code.strip()]
            elif key == "core_only":
                clean[key] = value.lower() in ("1", "true", "yes", "是", "y")
            else:
                clean[key] = value
        rows.append(clean)
    if not rows:
        raise Unprocessable("CSV 没有岗位行 (no post rows in the CSV)", field="posts")
    try:
        return _POSTS.validate_python(rows)
    except ValidationError as exc:
        raise _unprocessable(exc) from exc
