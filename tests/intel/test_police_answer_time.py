"""When a police answer counts as recorded (pure): clamped within the clock skew, refused beyond it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intel.cases.workflow import ImplausibleAnswer, police_answer_time

FORWARDED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_an_answer_between_forwarding_and_arrival_keeps_its_time():
    said = datetime(2026, 12, 2, 21, 30, tzinfo=UTC)
    assert police_answer_time(said, forwarded_at=FORWARDED, now=NOW) == said


def test_a_clock_a_little_off_is_clamped_to_the_nearer_bound():
    assert police_answer_time(NOW + timedelta(minutes=4), forwarded_at=FORWARDED, now=NOW) == NOW
    assert police_answer_time(FORWARDED - timedelta(minutes=4), forwarded_at=FORWARDED, now=NOW) == FORWARDED


def test_an_answer_far_in_the_future_or_before_forwarding_is_refused():
    with pytest.raises(ImplausibleAnswer, match="future"):
        police_answer_time(NOW + timedelta(minutes=6), forwarded_at=FORWARDED, now=NOW)
    with pytest.raises(ImplausibleAnswer, match="forwarded"):
        police_answer_time(FORWARDED - timedelta(hours=1), forwarded_at=FORWARDED, now=NOW)
