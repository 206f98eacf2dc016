"""Plain records passed between the server's layers.

Storage returns these frozen dataclasses, never live result rows (as Buildbot's
data layer does), so they can cross from the database thread to the reactor thread.
Times are timezone-aware UTC datetimes; coordinates WGS84 degrees; speed in knots.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    id: int
    unique_id: str
    name: str
    organisation_id: int
    disabled: bool = False
    last_update: dt.datetime | None = None
    position_id: int | None = None   # id of the latest stored position, if any


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str
    organisation_id: int
    administrator: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class NewPosition:
    """A decoded position on its way into storage (no id yet)."""

    device_id: int
    protocol: str
    server_time: dt.datetime
    device_time: dt.datetime
    fix_time: dt.datetime
    valid: bool
    latitude: float
    longitude: float
    altitude_m: float = 0.0
    speed_kn: float = 0.0
    course_deg: float = 0.0
    accuracy_m: float = 0.0
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    network: Mapping[str, Any] | None = None
    archive: bool = False   # arrived older than the device's latest fix


@dataclasses.dataclass(frozen=True, slots=True)
class StoredPosition:
    """A position as stored, with its id."""

    id: int
    device_id: int
    protocol: str
    server_time: dt.datetime
    device_time: dt.datetime
    fix_time: dt.datetime
    valid: bool
    latitude: float
    longitude: float
    altitude_m: float
    speed_kn: float
    course_deg: float
    accuracy_m: float
    attributes: Mapping[str, Any]
    network: Mapping[str, Any] | None
    archive: bool


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """An event (alarm, status change) on its way into storage.

    `fix_time` ties it to the position that caused it; an event is unique per
    (device_id, type, event_time, alarm) so a retransmitted alarm is stored once.
    """

    device_id: int
    type: str                       # Traccar event type: "alarm", "deviceOnline" ...
    event_time: dt.datetime
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fix_time: dt.datetime | None = None   # the causing position's fix time, if any


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    device_id: int
    type: str
    event_time: dt.datetime
    position_id: int | None
    attributes: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Latest status of a device (last seen, attributes of a heartbeat)."""

    device_id: int
    last_update: dt.datetime
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """What the batch writer commits in ONE transaction."""

    positions: tuple[NewPosition, ...] = ()
    events: tuple[NewEvent, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownDeviceAttempt:
    unique_id: str
    protocol: str
    remote_address: str
    attempt_time: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class StoredCommand:
    """A downlink command and where it stands.

    `status`: "queued" (waits for the device), "sent" (written to its
    connection), "answered" (the device replied: `result`), "failed" (the
    protocol cannot carry it: `result` says why).
    """

    id: int
    device_id: int
    type: str
    attributes: Mapping[str, Any]
    status: str
    created: dt.datetime
    sent_time: dt.datetime | None = None
    result_time: dt.datetime | None = None
    result: str | None = None
    user_id: int | None = None
