"""When a check-in or check-out counts, and at what time: the written rule for actions a phone captured offline (pure).

A phone without signal keeps the action with its own clock's time (`at`) and syncs it later. The rule, also in
docs/api.md ("Offline actions and late sync"):

- Online (no device time): the server's time is the time.
- The device's time is used when it is not ahead of the server by more than CLOCK_SKEW; a clock further ahead is
  not trusted: the server's time is used and the action is flagged `device_clock_ahead`.
- A check-in counts when its time falls inside the shift's window (from CHECK_IN_EARLY before the start to the end),
  whenever it is synced. It is flagged `late_sync` when it reached the server more than LATE_SYNC_BOUND after the
  shift ended: accepted with the device's time, for a station admin to confirm.
- A check-in inside the window reverses a no-show the sweep recorded while the phone was offline.
- A check-out's time is clamped into [check-in, shift end]; the same late and clock flags apply.

- A volunteer who forgets to check out is checked out by the sweep AUTO_CHECK_OUT_AFTER past the shift's end, at
  the shift's end (hours from check-in to the end of the shift), flagged `auto_checkout`.

Whether a check-out's hours wait for a station admin is `hours_decision`'s call: under HOURS_APPROVAL `all` (the
default) every check-out's hours are pending until approved; under `flagged` only flagged ones are, the others are
approved by rule at check-out.

Presence itself (QR token or geofence) is judged in `offers.presence_review` with `checkin_qr`; its flags
`stale_qr` and `far_from_post` join these on `review_reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

CHECK_IN_EARLY = timedelta(hours=1)
CLOCK_SKEW = timedelta(minutes=5)
LATE_SYNC_BOUND = timedelta(hours=24)
AUTO_CHECK_OUT_AFTER = timedelta(hours=2)

HoursApproval = Literal["all", "flagged"]  # which check-outs' hours wait for a station admin (setting HOURS_APPROVAL)


@dataclass(frozen=True)
class AttendanceTime:
    """The time an attendance step is recorded at, and why staff should review it (None: nothing to review)."""

    at: datetime
    review: str | None = None


def attendance_time(*, device_at: datetime | None, received_at: datetime, shift_end: datetime) -> AttendanceTime:
    """The time to record for a step received at `received_at` that the phone says happened at `device_at`."""
    if device_at is None:
        return AttendanceTime(received_at)
    if device_at > received_at + CLOCK_SKEW:
        return AttendanceTime(received_at, "device_clock_ahead")
    at = min(device_at, received_at)
    return AttendanceTime(at, "late_sync" if received_at > shift_end + LATE_SYNC_BOUND else None)


def inside_check_in_window(at: datetime, *, shift_start: datetime, shift_end: datetime) -> bool:
    """Whether a check-in at `at` belongs to the shift."""
    return shift_start - CHECK_IN_EARLY <= at < shift_end


def hours_served(*, checked_in_at: datetime, checked_out_at: datetime, shift_start: datetime, shift_end: datetime) -> tuple[datetime, datetime, float]:
    """(started, ended, hours): the time on post, counted inside the shift only."""
    started = max(checked_in_at, shift_start)
    ended = max(started, min(checked_out_at, shift_end))
    return started, ended, round((ended - started).total_seconds() / 3600, 2)


@dataclass(frozen=True)
class Departure:
    """A check-out: its time, the hours it records (counted inside the shift), and whether they wait for review."""

    at: datetime
    started: datetime
    ended: datetime
    hours: float
    review: str | None
    flagged: bool


def departure(*, device_at: datetime | None, received_at: datetime, checked_in_at: datetime, prior_review: str | None,
              shift_start: datetime, shift_end: datetime) -> Departure:
    """The check-out of someone checked in at `checked_in_at`: flagged when the check-in or the check-out needs review."""
    when = attendance_time(device_at=device_at, received_at=received_at, shift_end=shift_end)
    at = max(when.at, checked_in_at)
    started, ended, hours = hours_served(checked_in_at=checked_in_at, checked_out_at=at, shift_start=shift_start, shift_end=shift_end)
    return Departure(at, started, ended, hours, when.review, bool(prior_review or when.review))


def hours_decision(*, flagged: bool, at: datetime, approval: HoursApproval) -> tuple[str, str | None, datetime | None]:
    """(hours_status, decided_by, decided_at) of hours recorded at `at`: pending under `all` or when flagged, else approved by rule."""
    if approval == "all" or flagged:
        return "pending", None, None
    return "approved", "rule", at
