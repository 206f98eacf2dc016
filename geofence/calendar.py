"""Calendars: weekly active hours, evaluated in a local time zone.

Stored form (`Calendar.from_json` reads it, `Calendar.to_json` writes it back)::

    {"intervals": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "17:30"},
                   {"days": ["fri"], "from": "22:00", "to": "06:00"}]}

- ``days``: three-letter English day names, any case, any order; optional (every day).
  Duplicates are merged; an empty list is an error (leave the key out for every day).
- ``from`` / ``to``: local wall-clock time ``HH:MM`` (two digits each, 00:00..23:59;
  ``to`` may also be ``24:00``).  The start is inclusive, the end exclusive.
- ``to`` earlier than ``from``: the interval runs overnight and belongs to the day it
  starts on (fri 22:00-06:00 covers Saturday 03:00, not Friday 03:00).  ``from == to``
  is an error (use 00:00-24:00 for a whole day).
- At least one and at most `MAX_INTERVALS` intervals; no other keys.

Canonical form (`to_json`): every interval with its ``days`` listed in week order
(mon..sun, lower case), even when it is every day, so readers never need the default.

`Calendar.active(time, tz)` converts the aware `time` to `tz` (a `zoneinfo.ZoneInfo`)
and compares the local wall-clock time: on a DST change the local clock decides, so
an interval 02:00-03:00 is empty on the spring-forward day and covers both 02:xx
hours of the autumn day.

Anything wrong raises `CalendarError` (a `ValueError`) whose message starts with the
path of the bad field, e.g. ``intervals[1].from: expected HH:MM, got '25:00'``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DAYS", "MAX_INTERVALS", "Calendar", "CalendarError", "Interval"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
MAX_INTERVALS = 200
_DAY_MINUTES = 24 * 60
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_INTERVAL_KEYS = ("days", "from", "to")


class CalendarError(ValueError):
    """A calendar definition that is not valid; the message names the field."""


@dataclass(frozen=True, slots=True)
class Interval:
    """Active on `days` (0 = Monday) from `start_min` to `end_min` (minutes after local
    midnight, end exclusive); `end_min < start_min` runs past midnight into the next day."""

    days: frozenset[int]
    start_min: int
    end_min: int

    @property
    def overnight(self) -> bool:
        return self.end_min < self.start_min

    def covers(self, weekday: int, second_of_day: float) -> bool:
        start_s, end_s = self.start_min * 60, self.end_min * 60
        if not self.overnight:
            return weekday in self.days and start_s <= second_of_day < end_s
        if weekday in self.days and second_of_day >= start_s:
            return True
        return (weekday - 1) % 7 in self.days and second_of_day < end_s


@dataclass(frozen=True, slots=True)
class Calendar:
    """Weekly active hours; see the module docstring."""

    intervals: tuple[Interval, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calendar:
        """The calendar of a stored definition; `CalendarError` names what is wrong."""
        if not isinstance(data, Mapping):
            raise CalendarError(f"calendar: expected an object, got {type(data).__name__}")
        _no_unknown_keys(data, ("intervals",), "calendar")
        raw = data.get("intervals")
        if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
            raise CalendarError(f"intervals: expected a list, got {_describe(raw)}")
        if not raw:
            raise CalendarError("intervals: at least one interval is required")
        if len(raw) > MAX_INTERVALS:
            raise CalendarError(f"intervals: at most {MAX_INTERVALS} intervals, got {len(raw)}")
        return cls(tuple(_interval(item, f"intervals[{number}]") for number, item in enumerate(raw)))

    def to_json(self) -> dict[str, Any]:
        """The canonical stored form (see the module docstring)."""
        return {"intervals": [
            {"days": [DAYS[day] for day in sorted(interval.days)],
             "from": _hhmm(interval.start_min), "to": _hhmm(interval.end_min)}
            for interval in self.intervals]}

    def active(self, time: dt.datetime, tz: dt.tzinfo) -> bool:
        """Whether `time` (timezone-aware) falls in an interval, in local time of `tz`."""
        if time.tzinfo is None or time.utcoffset() is None:
            raise ValueError(f"calendar time must be timezone-aware, got {time!r}")
        local = time.astimezone(tz)
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        weekday = local.weekday()
        return any(interval.covers(weekday, second) for interval in self.intervals)


def _describe(value: Any) -> str:
    if value is None or isinstance(value, str | int | float | bool):
        return repr(value)
    return type(value).__name__


def _no_unknown_keys(data: Mapping[str, Any], known: Sequence[str], path: str) -> None:
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise CalendarError(f"{path}: unknown key {unknown[0]!r}; expected {', '.join(known)}")


def _interval(item: Any, path: str) -> Interval:
    if not isinstance(item, Mapping):
        raise CalendarError(f"{path}: expected an object, got {_describe(item)}")
    _no_unknown_keys(item, _INTERVAL_KEYS, path)
    days = _days(item["days"], f"{path}.days") if "days" in item else frozenset(range(7))
    start = _minutes(item.get("from"), f"{path}.from", allow_24=False)
    end = _minutes(item.get("to"), f"{path}.to", allow_24=True)
    if start == end:
        raise CalendarError(f"{path}: from and to are both {_hhmm(start)}; "
                            "use 00:00-24:00 for a whole day")
    return Interval(days, start, end)


def _days(raw: Any, path: str) -> frozenset[int]:
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise CalendarError(f"{path}: expected a list of day names, got {_describe(raw)}")
    if not raw:
        raise CalendarError(f"{path}: empty list; leave 'days' out for every day")
    days = set()
    for number, name in enumerate(raw):
        day = name.lower() if isinstance(name, str) else None
        if day not in DAYS:
            raise CalendarError(f"{path}[{number}]: expected one of {', '.join(DAYS)}, got {_describe(name)}")
        days.add(DAYS.index(day))
    return frozenset(days)


def _minutes(raw: Any, path: str, allow_24: bool) -> int:
    if raw is None:
        raise CalendarError(f"{path}: required (HH:MM)")
    match = _HHMM.match(raw) if isinstance(raw, str) else None
    minutes = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if not 0 <= minutes <= (_DAY_MINUTES if allow_24 else _DAY_MINUTES - 1):
        raise CalendarError(f"{path}: expected HH:MM, got {_describe(raw)}")
    return minutes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
