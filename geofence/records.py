"""The records the rule engine takes and gives: `Fix`, `Profile`, `ZoneRule`,
`DeviceContext` in, `Happening` out.

A module of their own so that the engine (`geofence.engine`), the device state
(`geofence.state`) and every handler of the chain (`geofence.handlers`) can name them
without importing each other.  `geofence.engine` re-exports them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from geofence.calendar import Calendar
from geofence.zones import Zone

__all__ = ["DeviceContext", "Fix", "Happening", "Profile", "ZoneRule"]


@dataclass(frozen=True, slots=True)
class Fix:
    """A live position: `time` is the aware UTC fix time, speed in knots."""

    time: dt.datetime
    lon: float
    lat: float
    speed_kn: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0
    accuracy_m: float = 0.0
    valid: bool = True
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Profile:
    """Thresholds of one device (the caller resolves device settings > group > server).

    None disables a check.  `hysteresis_fixes` below 1 counts as 1 (records are not
    validated here: the caller's settings parser is).  Each handler names the fields
    it reads in its ``settings``.
    """

    speed_limit_kn: float | None = None       # deviceOverspeed above it; None: no limit
    overspeed_min_duration_s: float = 0.0     # over the limit this long on every fix
    motion_speed_kn: float = 1.0              # a fix is moving when faster (GPS drift is slower)
    moving_min_distance_m: float = 200.0      # stopped -> moving after this far from the last stop ...
    moving_min_duration_s: float = 60.0       # ... or this long moving
    stopped_min_duration_s: float = 180.0     # moving -> stopped after this long not moving
    idle_after_s: float | None = 600.0        # deviceIdle: ignition on, not moving this long
    inactive_after_s: float | None = None     # deviceInactive after this long without data
    status_timeout_s: float = 600.0           # deviceUnknown after this long unseen
    hysteresis_m: float = 0.0                 # exit only beyond this distance outside the zone
    hysteresis_fixes: int = 1                 # consecutive fixes to confirm an enter or exit
    crossing_max_gap_s: float = 900.0         # geofenceCrossed only between fixes this close


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """A zone and its settings; None means the device profile's value."""

    zone: Zone
    speed_limit_kn: float | None = None
    dwell_s: float | None = None
    calendar: Calendar | None = None
    hysteresis_m: float | None = None
    hysteresis_fixes: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What the engine needs to know about a device besides its state."""

    device_id: int
    organisation_id: int
    name: str
    group_id: int | None
    zone_ids: frozenset[int]  # zones assigned directly or through the group
    profile: Profile
    timezone: dt.tzinfo


@dataclass(frozen=True, slots=True)
class Happening:
    """An event to store; `at_fix`: tied to the fix being evaluated."""

    type: str
    time: dt.datetime
    attributes: Mapping[str, Any]
    geofence_id: int | None = None
    at_fix: bool = True
