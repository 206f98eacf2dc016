"""NMEA-style text fields many protocols carry: `ddmm.mmmm` / `dddmm.mmmm`
coordinates with their hemisphere letters, and `ddmmyy` / `hhmmss[.sss]` UTC
date and time.

One implementation each, so that a protocol only states its dialect: which
syntax its frames use (its own regular expression gates the text when it is
stricter than the forms here), which letter negates, and which checks it makes.
Every helper raises `ValueError` (with the offending text) for a field it
refuses; the protocol turns that into its own error, with its context.

The strict checks (minutes below 60, degrees within +-90 / +-180) are the
defaults; the protocols that predate this module pass `check_minutes=False` or
no limit, where their devices' accepted input has always been wider (Traccar
checks neither), so that no frame they decode changes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Collection

HEMISPHERES = frozenset({"N", "S", "E", "W"})
NEGATIVE = frozenset({"S", "W"})   # the letters that make a coordinate negative

_DDMM = re.compile(r"(\d*)(\d\d(?:\.\d+)?)")
"""Degree digits (any number, possibly none) before the two of whole minutes,
then an optional fraction of minutes: "4807.038", "01131.000", "12", "0.5" is not."""


def degrees_minutes(degrees: float, minutes: float, hemisphere: str | None = None, *,
                    negative: Collection[str] = NEGATIVE, limit: float = math.inf,
                    check_minutes: bool = True) -> float:
    """`degrees` + `minutes` / 60, negated when `hemisphere` (one of N S E W, or
    None when the frame has no letter) is in `negative`.

    ValueError when the hemisphere is no letter of N S E W, when minutes are 60
    or more (if `check_minutes`), or when the value is not finite or above `limit`.
    """
    if hemisphere is not None and hemisphere not in HEMISPHERES:
        raise ValueError(f"bad hemisphere {hemisphere[:8]!r}")
    if check_minutes and not 0 <= minutes < 60:
        raise ValueError(f"minutes {minutes!r} not below 60")
    value = degrees + minutes / 60   # floats: 400 digits read as inf, refused here
    if not math.isfinite(value):
        raise ValueError("coordinate out of range (not finite)")
    if value > limit:
        raise ValueError(f"coordinate {value!r} out of range (over {limit})")
    return -value if hemisphere in negative else value


def coordinate(text: str, hemisphere: str | None = None, *,
               negative: Collection[str] = NEGATIVE, limit: float = math.inf,
               check_minutes: bool = True) -> float:
    """"ddmm.mmmm" / "dddmm.mmmm" (the fraction optional) and its hemisphere
    letter -> signed degrees; see `degrees_minutes` for the checks.  `limit` is
    90 for a latitude and 180 for a longitude when the protocol checks ranges.

    ValueError when `text` is not of that form (no sign, no spaces) or a check fails.
    """
    match = _DDMM.fullmatch(text)
    if match is None:
        raise ValueError(f"bad coordinate {text[:20]!r}")
    return degrees_minutes(float(match[1] or 0), float(match[2]), hemisphere,
                           negative=negative, limit=limit, check_minutes=check_minutes)


def bcd_coordinate(digits: str, degree_digits: int) -> float:
    """Unsigned degrees from packed-BCD digits "DDMMmmmm" / "DDDMMmmmm" (four
    implied decimals of minutes; binary frames carry the sign in a flag).
    ValueError when they are no digits."""
    if not digits.isdigit():
        raise ValueError(f"bad BCD coordinate {digits[:20]!r}")
    split = degree_digits + 2
    return coordinate(f"{digits[:split]}.{digits[split:]}", check_minutes=False)


_DATE = re.compile(r"\d{6}")
_TIME = re.compile(r"\d{6}")
_TIME_FRACTION = re.compile(r"\d{6}(?:\.\d+)?")


def date_time(date: str, time: str, *, fraction: bool = False) -> dt.datetime:
    """NMEA "ddmmyy" + "hhmmss" (with `fraction`, also "hhmmss.sss": the fraction
    is ignored) -> aware UTC datetime, years 2000-2099.

    ValueError when the fields are not of that form or name no calendar time.
    """
    if not _DATE.fullmatch(date) or not (_TIME_FRACTION if fraction else _TIME).fullmatch(time):
        raise ValueError(f"bad date/time {date!r} {time!r}")
    try:
        return dt.datetime(2000 + int(date[4:6]), int(date[2:4]), int(date[0:2]),
                           int(time[0:2]), int(time[2:4]), int(time[4:6]), tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"invalid date/time {date} {time}") from None


__all__ = ["HEMISPHERES", "NEGATIVE", "bcd_coordinate", "coordinate", "date_time",
           "degrees_minutes"]
