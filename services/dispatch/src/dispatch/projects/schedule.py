"""Recurring schedules of service projects (pure): iCalendar RRULE segments, holiday exceptions, "this and future" splits.

A project's schedule is a list of segments. Each segment is an RRULE (RFC 5545 `RECUR` value, e.g.
`FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR`) expanded from a local start date and a local start time in the project's time
zone, and is valid from `starts_on` until the day before `ends_before` (open when None). A "this and future" edit
ends the current segment before the edit date and starts a new one there, so past shifts keep the rule they had.
Exceptions (EXDATE, e.g. school holidays) are local dates on which no shift starts, whatever segment covers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

COUNTY_TZ = "Asia/Shanghai"
ALLOWED_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")  # no HOURLY/MINUTELY/SECONDLY: a shift a day at most per rule
MAX_OCCURRENCES = 5000  # per segment and window: a safety bound against a rule that would flood the table


class ScheduleError(ValueError):
    """A schedule that cannot be expanded; `field` names the part at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Segment:
    """One RRULE valid from `starts_on` (its first possible date) until before `ends_before` (None: open-ended)."""

    rrule: str
    start_time: time
    starts_on: date
    ends_before: date | None = None


def parse_rule(text: str, starts_on: date, start_time: time) -> rrule:
    """The dateutil rule of an RRULE value anchored at the local `starts_on` + `start_time`; ScheduleError if invalid."""
    value = text.strip()
    if value.upper().startswith("RRULE:"):
        value = value[6:]
    if not value or "\n" in value:
        raise ScheduleError("RRULE 格式错误 (one RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO)", "rrule")
    parts = dict(p.split("=", 1) for p in value.upper().split(";") if "=" in p)
    if parts.get("FREQ") not in ALLOWED_FREQS:
        raise ScheduleError(f"FREQ 须为 {'/'.join(ALLOWED_FREQS)} (FREQ must be one of {', '.join(ALLOWED_FREQS)})", "rrule")
    if "DTSTART" in value.upper():
        raise ScheduleError("请用 starts_on 与 start_time 代替 DTSTART (give starts_on and start_time instead)", "rrule")
    until = parts.get("UNTIL", "")
    if until.endswith("Z"):  # a UTC UNTIL against the floating local start: the same instant in county time
        try:
            local = datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(ZoneInfo(COUNTY_TZ))
        except ValueError:
            raise ScheduleError("UNTIL 格式错误 (UNTIL must look like 20270115T000000Z)", "rrule") from None
        value = ";".join(f"UNTIL={local:%Y%m%dT%H%M%S}" if p.upper().startswith("UNTIL=") else p for p in value.split(";"))
    try:
        rule = rrulestr(value, dtstart=datetime.combine(starts_on, start_time))
    except (ValueError, TypeError) as exc:
        raise ScheduleError(f"RRULE 无法解析 (cannot parse the RRULE): {exc}", "rrule") from None
    if not isinstance(rule, rrule):
        raise ScheduleError("RRULE 格式错误 (one RRULE value)", "rrule")
    return rule


def validate_segment(segment: Segment) -> None:
    """Raise ScheduleError when the segment's rule does not parse or its dates are out of order."""
    parse_rule(segment.rrule, segment.starts_on, segment.start_time)
    if segment.ends_before is not None and segment.ends_before <= segment.starts_on:
        raise ScheduleError("结束日期须晚于开始日期 (ends_before must be after starts_on)", "ends_before")


def occurrences(
    segments: Iterable[Segment], *, exdates: Iterable[date], tz: str, start: datetime, end: datetime,
) -> list[datetime]:
    """Aware start times of every occurrence in [start, end) of the segments, minus exception dates, sorted."""
    return list(_occurrences(tuple(segments), frozenset(exdates), tz, start, end))


@lru_cache(maxsize=256)  # a county's projects mostly share a few rules (school days at 07:20): one sweep expands each once
def _occurrences(segments: tuple[Segment, ...], skip: frozenset[date], tz: str, start: datetime, end: datetime) -> tuple[datetime, ...]:
    zone = ZoneInfo(tz)
    out: set[datetime] = set()
    for segment in segments:
        rule = parse_rule(segment.rrule, segment.starts_on, segment.start_time)
        local_from = max(start.astimezone(zone).replace(tzinfo=None), datetime.combine(segment.starts_on, time.min))
        local_to = end.astimezone(zone).replace(tzinfo=None)
        if segment.ends_before is not None:
            local_to = min(local_to, datetime.combine(segment.ends_before, time.min))
        if local_to <= local_from:
            continue
        found = 0
        for local in rule.xafter(local_from, inc=True):
            if local >= local_to:
                break
            found += 1
            if found > MAX_OCCURRENCES:
                raise ScheduleError(f"一次最多生成 {MAX_OCCURRENCES} 个班次 (at most {MAX_OCCURRENCES} occurrences per rule and window)", "rrule")
            if local.date() not in skip:
                out.add(local.replace(tzinfo=zone))  # inside [start, end): the local bounds are theirs (no DST in county time)
    return tuple(sorted(out))


def split_at(segments: list[Segment], *, on: date, new: Segment) -> list[Segment]:
    """The segments after a "this and future" edit from local date `on`: earlier ones end before `on`, `new` starts there.

    Segments that would only have begun on or after `on` are dropped; the new segment keeps `new.ends_before`."""
    kept: list[Segment] = []
    for segment in segments:
        if segment.starts_on >= on:
            continue
        if segment.ends_before is None or segment.ends_before > on:
            segment = replace(segment, ends_before=on)
        kept.append(segment)
    kept.append(replace(new, starts_on=on))
    return kept


def shift_end(starts_at: datetime, minutes: int) -> datetime:
    """When a shift that starts at `starts_at` and lasts `minutes` ends."""
    return starts_at + timedelta(minutes=minutes)
