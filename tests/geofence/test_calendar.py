"""Calendar: parsing, canonical form, weekly intervals in local time, overnight, DST, errors."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from geofence.calendar import Calendar, CalendarError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(*args: int, tz=BERLIN) -> dt.datetime:
    """An aware UTC time given as local wall-clock time in `tz` (unambiguous times only)."""
    return dt.datetime(*args, tzinfo=tz).astimezone(UTC)


OFFICE = Calendar.from_json({"intervals": [
    {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "17:30"}]})


def test_to_json_is_canonical_and_reads_back():
    calendar = Calendar.from_json({"intervals": [
        {"days": ["FRI", "mon", "Mon"], "from": "22:00", "to": "06:00"}, {"from": "00:00", "to": "24:00"}]})
    assert calendar.to_json() == {"intervals": [
        {"days": ["mon", "fri"], "from": "22:00", "to": "06:00"},
        {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "00:00", "to": "24:00"}]}
    assert Calendar.from_json(calendar.to_json()) == calendar


def test_office_hours_start_inclusive_end_exclusive_in_local_time():
    # Monday 2024-05-06, Berlin is UTC+2 (CEST): 08:00 local = 06:00 UTC.
    assert OFFICE.active(utc(2024, 5, 6, 6, 0), BERLIN)
    assert not OFFICE.active(utc(2024, 5, 6, 5, 59, 59), BERLIN)
    assert OFFICE.active(utc(2024, 5, 6, 15, 29, 59), BERLIN)
    assert not OFFICE.active(utc(2024, 5, 6, 15, 30), BERLIN)   # 17:30 local: end exclusive


def test_weekend_is_not_in_a_weekday_calendar():
    assert not OFFICE.active(local(2024, 5, 11, 10, 0), BERLIN)   # Saturday
    assert OFFICE.active(local(2024, 5, 10, 10, 0), BERLIN)       # Friday


def test_the_same_instant_depends_on_the_time_zone():
    instant = utc(2024, 5, 6, 13, 0)   # 15:00 Berlin, 09:00 New York, 13:00 UTC
    calendar = Calendar.from_json({"intervals": [{"from": "14:00", "to": "16:00"}]})
    assert calendar.active(instant, BERLIN)
    assert not calendar.active(instant, NEW_YORK)
    assert not calendar.active(instant, UTC)


def test_overnight_interval_belongs_to_the_day_it_starts_on():
    night = Calendar.from_json({"intervals": [{"days": ["fri"], "from": "22:00", "to": "06:00"}]})
    assert night.active(local(2024, 5, 10, 22, 0), BERLIN)        # Friday 22:00
    assert night.active(local(2024, 5, 11, 3, 0), BERLIN)         # Saturday 03:00
    assert not night.active(local(2024, 5, 11, 6, 0), BERLIN)     # Saturday 06:00: end exclusive
    assert not night.active(local(2024, 5, 10, 3, 0), BERLIN)     # Friday 03:00 belongs to Thursday
    assert not night.active(local(2024, 5, 11, 22, 30), BERLIN)   # Saturday night
    assert not night.active(local(2024, 5, 10, 21, 59), BERLIN)


def test_overnight_from_sunday_wraps_into_monday():
    night = Calendar.from_json({"intervals": [{"days": ["sun"], "from": "23:00", "to": "01:00"}]})
    assert night.active(local(2024, 5, 13, 0, 30), BERLIN)        # Monday 00:30
    assert not night.active(local(2024, 5, 14, 0, 30), BERLIN)    # Tuesday 00:30


def test_to_midnight_covers_the_last_second_of_the_day_only():
    sunday = Calendar.from_json({"intervals": [{"days": ["sun"], "from": "00:00", "to": "24:00"}]})
    assert sunday.active(local(2024, 5, 12, 23, 59, 59), BERLIN)
    assert sunday.active(local(2024, 5, 12, 0, 0), BERLIN)
    assert not sunday.active(local(2024, 5, 13, 0, 0), BERLIN)


def test_spring_forward_day_follows_the_local_clock():
    # 2024-03-31 Berlin moves from UTC+1 to UTC+2 at 02:00 local.
    morning = Calendar.from_json({"intervals": [{"from": "08:00", "to": "09:00"}]})
    assert morning.active(utc(2024, 3, 30, 7, 30), BERLIN)        # 08:30 CET the day before
    assert not morning.active(utc(2024, 3, 31, 7, 30), BERLIN)    # 09:30 CEST
    assert morning.active(utc(2024, 3, 31, 6, 30), BERLIN)        # 08:30 CEST
    gap = Calendar.from_json({"intervals": [{"from": "02:00", "to": "03:00"}]})
    assert not gap.active(utc(2024, 3, 31, 0, 59), BERLIN)        # 01:59 CET
    assert not gap.active(utc(2024, 3, 31, 1, 0), BERLIN)         # 03:00 CEST: the hour never happened


def test_fall_back_day_covers_both_repeated_hours():
    # 2024-10-27 Berlin moves from UTC+2 back to UTC+1 at 03:00 local: 02:xx happens twice.
    night = Calendar.from_json({"intervals": [{"days": ["sun"], "from": "02:00", "to": "03:00"}]})
    assert night.active(utc(2024, 10, 27, 0, 30), BERLIN)         # 02:30 CEST
    assert night.active(utc(2024, 10, 27, 1, 30), BERLIN)         # 02:30 CET
    assert not night.active(utc(2024, 10, 27, 2, 0), BERLIN)      # 03:00 CET
    assert not night.active(utc(2024, 10, 26, 23, 59), BERLIN)    # 01:59 CEST


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.active(dt.datetime(2024, 5, 6, 10, 0), BERLIN)


@pytest.mark.parametrize(("data", "message"), [
    ([], "calendar: expected an object"),
    ({}, "intervals: expected a list, got None"),
    ({"intervals": []}, "intervals: at least one interval is required"),
    ({"intervals": "08:00-17:00"}, "intervals: expected a list"),
    ({"intervals": [{"from": "08:00", "to": "17:00"}], "name": "x"}, "calendar: unknown key 'name'"),
    ({"intervals": [{"from": "08:00", "to": "17:00"}, {"from": "25:00", "to": "26:00"}]},
     "intervals[1].from: expected HH:MM, got '25:00'"),
    ({"intervals": [{"from": "8:00", "to": "17:00"}]}, "intervals[0].from: expected HH:MM, got '8:00'"),
    ({"intervals": [{"from": "24:00", "to": "01:00"}]}, "intervals[0].from: expected HH:MM, got '24:00'"),
    ({"intervals": [{"from": "08:00", "to": "24:30"}]}, "intervals[0].to: expected HH:MM, got '24:30'"),
    ({"intervals": [{"from": "08:00", "to": "17:60"}]}, "intervals[0].to: expected HH:MM"),
    ({"intervals": [{"from": 800, "to": "17:00"}]}, "intervals[0].from: expected HH:MM, got 800"),
    ({"intervals": [{"to": "17:00"}]}, "intervals[0].from: required"),
    ({"intervals": [{"from": "08:00"}]}, "intervals[0].to: required"),
    ({"intervals": [{"from": "08:00", "to": "08:00"}]}, "intervals[0]: from and to are both 08:00"),
    ({"intervals": [{"days": [], "from": "08:00", "to": "09:00"}]}, "intervals[0].days: empty list"),
    ({"intervals": [{"days": "mon", "from": "08:00", "to": "09:00"}]},
     "intervals[0].days: expected a list of day names"),
    ({"intervals": [{"days": ["mon", "funday"], "from": "08:00", "to": "09:00"}]},
     "intervals[0].days[1]: expected one of mon, tue, wed, thu, fri, sat, sun, got 'funday'"),
    ({"intervals": [{"days": ["mon"], "from": "08:00", "to": "09:00", "form": "x"}]},
     "intervals[0]: unknown key 'form'"),
    ({"intervals": ["08:00-09:00"]}, "intervals[0]: expected an object"),
    ({"intervals": [{"from": "08:00", "to": "09:00"}] * 201}, "at most 200 intervals"),
])
def test_invalid_calendars_name_the_field(data, message):
    with pytest.raises(CalendarError) as caught:
        Calendar.from_json(data)
    assert message in str(caught.value)


def test_calendar_error_is_a_value_error():
    assert issubclass(CalendarError, ValueError)
