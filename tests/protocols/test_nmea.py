"""The shared NMEA field helpers: coordinates, BCD coordinates, date and time."""

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import nmea


@pytest.mark.parametrize(("text", "hemisphere", "expected"), [
    ("4807.038", "N", 48 + 7.038 / 60),
    ("01131.000", "E", 11 + 31 / 60),
    ("3352.1292", "S", -(33 + 52.1292 / 60)),
    ("15112.5574", "W", -(151 + 12.5574 / 60)),
    ("4807", None, 48 + 7 / 60),          # no fraction, no letter
    ("07.5", "N", 7.5 / 60),              # no degree digits
])
def test_coordinate_reads_degrees_and_minutes_with_the_hemisphere_sign(text, hemisphere, expected):
    assert nmea.coordinate(text, hemisphere) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("text", ["", "7", "-4807.038", " 4807.038", "4807.", "48o7.038", "4807,038"])
def test_coordinate_refuses_text_of_another_form(text):
    with pytest.raises(ValueError, match="bad coordinate"):
        nmea.coordinate(text, "N")


@pytest.mark.parametrize("hemisphere", ["", "n", "X", " N", "NS"])
def test_coordinate_refuses_a_hemisphere_that_is_no_letter_of_nsew(hemisphere):
    with pytest.raises(ValueError, match="hemisphere"):
        nmea.coordinate("4807.038", hemisphere)


def test_minutes_of_60_or_more_are_refused_unless_the_check_is_off():
    with pytest.raises(ValueError, match="below 60"):
        nmea.coordinate("4860.000", "N")
    assert nmea.coordinate("4860.000", "N", check_minutes=False) == 49.0


def test_limit_refuses_degrees_beyond_the_range():
    assert nmea.coordinate("9000.000", "S", limit=90) == -90.0
    with pytest.raises(ValueError, match="out of range"):
        nmea.coordinate("9000.001", "N", limit=90)
    with pytest.raises(ValueError, match="out of range"):
        nmea.coordinate("18000.600", "E", limit=180)


def test_hundreds_of_digits_are_refused_as_not_finite_not_returned_as_inf():
    with pytest.raises(ValueError, match="not finite"):
        nmea.coordinate("9" * 400 + "00.0", "N")


def test_only_the_given_negative_letters_negate():
    """Wialon's dialect: a latitude's W stays positive."""
    assert nmea.coordinate("4807.038", "W", negative="S") > 0
    assert nmea.coordinate("4807.038", "S", negative="S") < 0


@given(st.floats(min_value=0, max_value=179.99, allow_nan=False),
       st.sampled_from(["N", "S", "E", "W"]))
def test_coordinate_inverts_the_ddmm_encoding(degrees, hemisphere):
    whole = math.floor(degrees)
    minutes = (degrees - whole) * 60
    text = f"{whole:03d}{minutes:09.6f}"
    if text[3:5] == "60":   # rounding carried into the next degree
        return
    value = nmea.coordinate(text, hemisphere, limit=180)
    assert abs(value) == pytest.approx(degrees, abs=1e-7)
    assert (value < 0) == (hemisphere in ("S", "W") and value != 0)


def test_bcd_coordinate_has_four_implied_decimals_of_minutes():
    assert nmea.bcd_coordinate("22323456", 2) == pytest.approx(22 + 32.3456 / 60)
    assert nmea.bcd_coordinate("114012345", 3) == pytest.approx(114 + 1.2345 / 60)
    with pytest.raises(ValueError):
        nmea.bcd_coordinate("2232345f", 2)


def test_date_time_reads_ddmmyy_and_hhmmss_as_utc():
    assert nmea.date_time("010526", "120005") == dt.datetime(2026, 5, 1, 12, 0, 5, tzinfo=dt.UTC)


def test_date_time_takes_a_fraction_of_seconds_only_when_allowed():
    expected = dt.datetime(2026, 5, 1, 12, 0, 5, tzinfo=dt.UTC)
    assert nmea.date_time("010526", "120005.250", fraction=True) == expected
    with pytest.raises(ValueError, match="bad date/time"):
        nmea.date_time("010526", "120005.250")


@pytest.mark.parametrize(("date", "time"), [("310926", "120000"), ("010526", "240000"),
                                            ("000000", "000000")])
def test_date_time_refuses_fields_that_name_no_calendar_time(date, time):
    with pytest.raises(ValueError, match="invalid date/time"):
        nmea.date_time(date, time)


@pytest.mark.parametrize(("date", "time"), [("01052", "120005"), ("010526", "12000"),
                                            ("01-526", "120005"), ("", "")])
def test_date_time_refuses_fields_of_another_form(date, time):
    with pytest.raises(ValueError, match="bad date/time"):
        nmea.date_time(date, time)
