"""When a once-a-day job is due: the county's calendar day and hour (Asia/Shanghai by default). Pure."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def due_day(now: datetime, *, hour: int, tz: ZoneInfo) -> date:
    """The latest local day whose run time (`hour`:00) is not after `now`."""
    local = now.astimezone(tz)
    return local.date() if local.hour >= hour else local.date() - timedelta(days=1)


def run_time(day: date, *, hour: int, tz: ZoneInfo) -> datetime:
    """The moment the job of local `day` is due."""
    return datetime.combine(day, time(hour), tzinfo=tz)
