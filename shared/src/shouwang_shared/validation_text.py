"""Why a request was refused, in Chinese: every refusal's `message` is for people (docs/api.md), and Pydantic's own
reasons are English. One reason per Pydantic error type, with the bound it names; our validators' own reasons
(`value_error`) are already written for people and pass through."""

from __future__ import annotations

from typing import Any

_REASONS = {
    "missing": "必填",
    "json_invalid": "不是有效的 JSON",
    "json_type": "不是有效的 JSON",
    "model_type": "应为对象",
    "dict_type": "应为对象",
    "model_attributes_type": "应为对象",
    "list_type": "应为列表",
    "string_type": "应为文字",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "decimal_parsing": "应为数字",
    "finite_number": "应为有限的数字",
    "bool_type": "应为是或否（true / false）",
    "bool_parsing": "应为是或否（true / false）",
    "datetime_type": "应为日期时间，如 2026-12-05T09:00:00+08:00",
    "datetime_parsing": "应为日期时间，如 2026-12-05T09:00:00+08:00",
    "datetime_from_date_parsing": "应为日期时间，如 2026-12-05T09:00:00+08:00",
    "timezone_aware": "需要带时区的时间，如 2026-12-05T09:00:00+08:00",
    "date_type": "应为日期，如 2026-12-05",
    "date_parsing": "应为日期，如 2026-12-05",
    "date_from_datetime_parsing": "应为日期，如 2026-12-05",
    "date_from_datetime_inexact": "应为日期，不带时刻",
    "time_type": "应为时刻，如 09:00",
    "time_parsing": "应为时刻，如 09:00",
    "uuid_type": "应为编号（UUID）",
    "uuid_parsing": "应为编号（UUID）",
    "url_type": "不是有效的网址",
    "url_parsing": "不是有效的网址",
    "url_scheme": "网址的协议不对",
    "string_pattern_mismatch": "格式不对",
    "extra_forbidden": "不认识这个字段",
    "string_too_short": "太短，至少 {min_length} 个字",
    "string_too_long": "太长，最多 {max_length} 个字",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "bytes_too_long": "太大，最多 {max_length} 字节",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应不大于 {le}",
    "multiple_of": "应为 {multiple_of} 的倍数",
    "literal_error": "不是可选的值（可选：{expected}）",
    "enum": "不是可选的值（可选：{expected}）",
}
_OWN_PREFIXES = ("Value error, ", "Assertion failed, ")


def chinese_reason(error: dict[str, Any]) -> str:
    """The reason of one Pydantic error (`type`, `msg`, `ctx`) for people: Chinese, with the bound it names."""
    kind, original = error.get("type", ""), str(error.get("msg", ""))
    if kind in ("value_error", "assertion_error"):
        return next((original[len(p):] for p in _OWN_PREFIXES if original.startswith(p)), original)
    reason = _REASONS.get(kind)
    if reason is None:
        return original or "不符合要求"
    try:
        return reason.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):  # a bound the type usually names is missing: the reason without it
        return reason.split("，", 1)[0].split("（", 1)[0]
