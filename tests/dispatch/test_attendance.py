"""The late-sync rule for attendance a phone captured offline, and which hours wait for a station admin (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.attendance import (
    CHECK_IN_EARLY,
    CLOCK_SKEW,
    LATE_SYNC_BOUND,
    attendance_time,
    departure,
    hours_decision,
    hours_served,
    inside_check_in_window,
)
from dispatch.config import DispatchSettings

START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
END = START + timedelta(hours=4)


def test_online_steps_use_the_servers_time():
    assert attendance_time(device_at=None, received_at=START, shift_end=END).at == START


def test_an_offline_check_in_keeps_the_phones_time_and_is_flagged_only_past_the_bound():
    device_at = START + timedelta(minutes=3)
    on_time = attendance_time(device_at=device_at, received_at=END + LATE_SYNC_BOUND, shift_end=END)
    assert (on_time.at, on_time.review) == (device_at, None)
    late = attendance_time(device_at=device_at, received_at=END + LATE_SYNC_BOUND + timedelta(seconds=1), shift_end=END)
    assert (late.at, late.review) == (device_at, "late_sync")


def test_a_phone_clock_ahead_of_the_server_is_not_trusted():
    received = START + timedelta(minutes=30)
    slightly = attendance_time(device_at=received + CLOCK_SKEW, received_at=received, shift_end=END)
    assert (slightly.at, slightly.review) == (received, None)  # never later than the server saw it
    ahead = attendance_time(device_at=received + CLOCK_SKEW + timedelta(seconds=1), received_at=received, shift_end=END)
    assert (ahead.at, ahead.review) == (received, "device_clock_ahead")


def test_the_check_in_window_opens_early_and_closes_at_the_shifts_end():
    assert inside_check_in_window(START - CHECK_IN_EARLY, shift_start=START, shift_end=END)
    assert not inside_check_in_window(START - CHECK_IN_EARLY - timedelta(seconds=1), shift_start=START, shift_end=END)
    assert not inside_check_in_window(END, shift_start=START, shift_end=END)


def test_hours_count_only_inside_the_shift():
    assert hours_served(checked_in_at=START - timedelta(minutes=30), checked_out_at=END + timedelta(hours=1), shift_start=START, shift_end=END)[2] == 4.0
    assert hours_served(checked_in_at=START + timedelta(hours=1), checked_out_at=START + timedelta(hours=1, minutes=30), shift_start=START, shift_end=END)[2] == 0.5
    assert hours_served(checked_in_at=END + timedelta(hours=1), checked_out_at=END + timedelta(hours=2), shift_start=START, shift_end=END)[2] == 0.0


def test_under_all_every_check_outs_hours_wait_for_a_station_admin():
    assert hours_decision(flagged=False, at=END, approval="all") == ("pending", None, None)
    assert hours_decision(flagged=True, at=END, approval="all") == ("pending", None, None)


def test_under_flagged_only_flagged_hours_wait_and_the_rest_are_approved_by_rule_at_check_out():
    assert hours_decision(flagged=False, at=END, approval="flagged") == ("approved", "rule", END)
    assert hours_decision(flagged=True, at=END, approval="flagged") == ("pending", None, None)


def test_a_clean_check_out_is_unflagged_and_a_flagged_check_in_flags_its_check_out():
    clean = departure(device_at=None, received_at=END, checked_in_at=START, prior_review=None, shift_start=START, shift_end=END)
    stale = departure(device_at=None, received_at=END, checked_in_at=START, prior_review="stale_qr", shift_start=START, shift_end=END)
    assert (clean.flagged, stale.flagged) == (False, True)
    assert [hours_decision(flagged=d.flagged, at=d.at, approval="flagged")[0] for d in (clean, stale)] == ["approved", "pending"]
    assert [hours_decision(flagged=d.flagged, at=d.at, approval="all")[0] for d in (clean, stale)] == ["pending", "pending"]


def test_the_setting_defaults_to_all_and_refuses_other_values(monkeypatch):
    monkeypatch.delenv("HOURS_APPROVAL", raising=False)
    assert DispatchSettings().hours_approval == "all"
    monkeypatch.setenv("HOURS_APPROVAL", "flagged")
    assert DispatchSettings().hours_approval == "flagged"
    monkeypatch.setenv("HOURS_APPROVAL", "none")
    with pytest.raises(ValueError, match="hours_approval"):
        DispatchSettings()
