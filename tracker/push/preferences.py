"""A user's notification preferences: what, from which devices, where, and when not.

Stored as JSON (`Store.set_preferences`); `Preferences.from_json` validates it
(`PreferencesError` names the field) and fills the defaults:

    {"types": ["alarm", "geofenceEnter"],   # event types; default ["alarm"]
     "alarms": ["sos", "powerCut"],         # alarm values; [] = every alarm
     "devices": [3, 7],                     # device ids; [] = every device the user sees
     "channels": ["fcm", "email"],          # [] = every channel the user has a token on
     "quietHours": {"from": "22:00", "to": "07:00"},   # or null; in `timezone`
     "timezone": "Europe/Berlin",           # IANA; default UTC; also for message times
     "language": "zh",                      # en (default) or zh
     "criticalOverride": true}              # critical alarms ring in quiet hours (default)

A user without stored preferences gets the defaults: every alarm of every device
they see, on every channel, no quiet hours.  Critical alarms: `CRITICAL_ALARMS`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from tracker.models import NOTIFICATORS, PUSH_CHANNELS, TraccarNotification
from tracker.push.base import CHANNELS

__all__ = ["CRITICAL_ALARMS", "NOTIFICATORS", "PUSH_CHANNELS", "Preferences", "PreferencesError",
           "TraccarNotification", "channels_wanted", "is_critical"]

CRITICAL_ALARMS = frozenset({"sos", "powerCut", "fallDown"})
LANGUAGES = ("en", "zh")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class PreferencesError(ValueError):
    """Preferences that cannot be used; the message names the field."""


def is_critical(event_type: str, attributes: Mapping[str, Any]) -> bool:
    return event_type == "alarm" and str(attributes.get("alarm", "")) in CRITICAL_ALARMS


@dataclasses.dataclass(frozen=True, slots=True)
class Preferences:
    types: frozenset[str] = frozenset({"alarm"})
    alarms: frozenset[str] = frozenset()
    devices: frozenset[int] = frozenset()
    channels: frozenset[str] = frozenset()
    quiet_from_min: int | None = None      # minutes after local midnight
    quiet_to_min: int | None = None
    timezone: str = "UTC"
    language: str = "en"
    critical_override: bool = True

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Preferences:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise PreferencesError("preferences must be an object")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise PreferencesError(f"unknown field(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            values.update(_FIELDS[key](value))
        return cls(**values)

    def wants(self, event_type: str, attributes: Mapping[str, Any], device_id: int) -> bool:
        """Whether this event of this device is one the user asked for."""
        if event_type not in self.types:
            return False
        if self.devices and device_id not in self.devices:
            return False
        if event_type == "alarm" and self.alarms:
            return str(attributes.get("alarm", "")) in self.alarms
        return True

    def takes(self, channel: str) -> bool:
        return not self.channels or channel in self.channels

    def quiet(self, now: dt.datetime) -> bool:
        """Whether `now` (aware) falls in the quiet hours (start inclusive, end
        exclusive; an interval over midnight wraps)."""
        if self.quiet_from_min is None or self.quiet_to_min is None:
            return False
        local = now.astimezone(zoneinfo.ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        start, end = self.quiet_from_min, self.quiet_to_min
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end


def _shown(value: Any) -> str:
    """`value` for a message: its repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PreferencesError(f"{field}: expected a list of names")
    return value


def _minutes(value: Any, field: str) -> int:
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None   # no "07:00\n"
    if match is None:
        raise PreferencesError(f"{field}: expected HH:MM, got {_shown(value)}")
    return int(match.group(1)) * 60 + int(match.group(2))


def _device_ids(value: Any) -> dict[str, Any]:
    if not isinstance(value, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise PreferencesError("devices: expected a list of device ids")
    return {"devices": frozenset(value)}


def _channels(value: Any) -> dict[str, Any]:
    channels = _strings(value, "channels")
    bad = sorted(set(channels) - set(CHANNELS))
    if bad:
        raise PreferencesError(f"channels: unknown {', '.join(bad)}; known: {', '.join(CHANNELS)}")
    return {"channels": frozenset(channels)}


def _quiet_hours(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or set(value) != {"from", "to"}:
        raise PreferencesError('quietHours: expected {"from": "HH:MM", "to": "HH:MM"} or null')
    return {"quiet_from_min": _minutes(value["from"], "quietHours.from"),
            "quiet_to_min": _minutes(value["to"], "quietHours.to")}


def _timezone(value: Any) -> dict[str, Any]:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise PreferencesError(f"timezone: unknown time zone {_shown(value)}") from None
    return {"timezone": value}


def _language(value: Any) -> dict[str, Any]:
    if value not in LANGUAGES:
        raise PreferencesError(f"language: one of {', '.join(LANGUAGES)}")
    return {"language": value}


def _critical_override(value: Any) -> dict[str, Any]:
    if not isinstance(value, bool):
        raise PreferencesError("criticalOverride: true or false")
    return {"critical_override": value}


# JSON field -> its reader (value -> Preferences fields).
_FIELDS = {
    "types": lambda value: {"types": frozenset(_strings(value, "types"))},
    "alarms": lambda value: {"alarms": frozenset(_strings(value, "alarms"))},
    "devices": _device_ids,
    "channels": _channels,
    "quietHours": _quiet_hours,
    "timezone": _timezone,
    "language": _language,
    "criticalOverride": _critical_override,
}


def channels_wanted(preferences: Preferences, subscriptions, *, event_type: str,
                    attributes: Mapping[str, Any], device_id: int, group_id: int | None,
                    available: frozenset[str] | set[str]) -> set[str]:
    """The channels (among `available`) a user wants this event of that device (in
    that group, or None) on: through their preferences and through any of their
    Traccar-shaped notifications."""
    wanted: set[str] = set()
    if preferences.wants(event_type, attributes, device_id):
        wanted |= {channel for channel in available if preferences.takes(channel)}
    for subscription in subscriptions:
        if subscription.wants(event_type, attributes, device_id, group_id):
            wanted |= subscription.channels & set(available)
    return wanted
