"""The pure schedule module of service projects: RRULE expansion in county time, holiday exceptions, splits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatch.projects.schedule import ScheduleError, Segment, occurrences, split_at, validate_segment

SHANGHAI = ZoneInfo("Asia/Shanghai")
TERM_START, TERM_END = date(2027, 2, 22), date(2027, 7, 3)  # a spring term, Monday to Saturday
HOLIDAYS = [date(2027, 4, 5), date(2027, 5, 3), date(2027, 5, 4), date(2027, 5, 5), date(2027, 6, 9)]  # Qingming, May Day, Duanwu
WINDOW = dict(start=datetime(2027, 1, 1, tzinfo=UTC), end=datetime(2028, 1, 1, tzinfo=UTC))


def test_a_weekly_school_patrol_over_a_term_skips_the_holidays_and_keeps_the_local_time():
    school_gate = Segment("FREQ=WEEKLY;BYDAY=MO,WE,FR", time(7, 20), TERM_START, ends_before=TERM_END)
    starts = occurrences([school_gate], exdates=HOLIDAYS, tz="Asia/Shanghai", **WINDOW)

    every_mwf = [TERM_START + timedelta(days=d) for d in range((TERM_END - TERM_START).days) if (TERM_START + timedelta(days=d)).weekday() in (0, 2, 4)]
    expected = [d for d in every_mwf if d not in HOLIDAYS]
    assert [s.astimezone(SHANGHAI).date() for s in starts] == expected
    assert len(expected) == len(every_mwf) - 4  # four of the five holidays fall on a Monday, Wednesday or Friday (May 4 is a Tuesday)
    assert {s.astimezone(SHANGHAI).time() for s in starts} == {time(7, 20)}
    assert {s.astimezone(UTC).time() for s in starts} == {time(23, 20)}  # no DST in China: always UTC+8
    assert starts[0] == datetime(2027, 2, 21, 23, 20, tzinfo=UTC)


def test_only_occurrences_inside_the_window_are_generated():
    daily = Segment("FREQ=DAILY", time(16, 30), date(2027, 3, 1))
    starts = occurrences([daily], exdates=[], tz="Asia/Shanghai",
                         start=datetime(2027, 3, 10, 8, 30, tzinfo=UTC), end=datetime(2027, 3, 13, 8, 30, tzinfo=UTC))
    assert starts == [datetime(2027, 3, d, 8, 30, tzinfo=UTC) for d in (10, 11, 12)]  # [start, end): the 13th is out


def test_a_this_and_future_edit_keeps_the_past_and_moves_the_rest():
    before = [Segment("FREQ=WEEKLY;BYDAY=MO,WE,FR", time(7, 20), TERM_START, ends_before=TERM_END)]
    edited = split_at(before, on=date(2027, 4, 12), new=Segment("FREQ=WEEKLY;BYDAY=TU,TH", time(7, 0), date(2000, 1, 1), ends_before=TERM_END))

    assert edited[0] == Segment("FREQ=WEEKLY;BYDAY=MO,WE,FR", time(7, 20), TERM_START, ends_before=date(2027, 4, 12))
    assert edited[1].starts_on == date(2027, 4, 12) and edited[1].rrule == "FREQ=WEEKLY;BYDAY=TU,TH"
    starts = [s.astimezone(SHANGHAI) for s in occurrences(edited, exdates=HOLIDAYS, tz="Asia/Shanghai", **WINDOW)]
    old = [s for s in starts if s.date() < date(2027, 4, 12)]
    new = [s for s in starts if s.date() >= date(2027, 4, 12)]
    assert old and {s.weekday() for s in old} == {0, 2, 4} and {s.time() for s in old} == {time(7, 20)}
    assert new and {s.weekday() for s in new} == {1, 3} and {s.time() for s in new} == {time(7, 0)}
    assert date(2027, 5, 4) not in {s.date() for s in new}  # the exceptions hold across the split (a Tuesday now)
    assert date(2027, 5, 6) in {s.date() for s in new}

    again = split_at(edited, on=date(2027, 3, 1), new=Segment("FREQ=DAILY", time(8, 0), date(2000, 1, 1)))
    assert [s.starts_on for s in again] == [TERM_START, date(2027, 3, 1)]  # a segment that had not begun is dropped
    assert again[0].ends_before == date(2027, 3, 1)


def test_until_in_utc_is_read_as_the_same_instant_in_county_time():
    rule = Segment("FREQ=DAILY;UNTIL=20270303T000000Z", time(7, 0), date(2027, 3, 1))  # 08:00 on the 3rd in Shanghai
    starts = occurrences([rule], exdates=[], tz="Asia/Shanghai", **WINDOW)
    assert [s.astimezone(SHANGHAI).day for s in starts] == [1, 2, 3]


@pytest.mark.parametrize(("rrule", "field"), [
    ("FREQ=HOURLY", "rrule"), ("FREQ=WEEKLY;BYDAY=XX", "rrule"), ("BYDAY=MO", "rrule"),
    ("DTSTART:20270101T000000\nRRULE:FREQ=DAILY", "rrule"), ("FREQ=DAILY;UNTIL=tomorrow", "rrule"),
])
def test_a_bad_rule_is_refused_naming_the_field(rrule, field):
    with pytest.raises(ScheduleError) as refused:
        validate_segment(Segment(rrule, time(7, 0), date(2027, 3, 1)))
    assert refused.value.field == field


def test_a_segment_that_ends_before_it_starts_is_refused():
    with pytest.raises(ScheduleError) as refused:
        validate_segment(Segment("FREQ=DAILY", time(7, 0), date(2027, 3, 1), ends_before=date(2027, 3, 1)))
    assert refused.value.field == "ends_before"
