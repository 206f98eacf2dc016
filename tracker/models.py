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

DEFAULT_ORGANISATION_ID = 1
"""The organisation that the initial migration creates; objects made without one go there."""


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    id: int
    unique_id: str
    name: str
    organisation_id: int
    disabled: bool = False
    last_update: dt.datetime | None = None
    position_id: int | None = None   # id of the latest stored position, if any
    group_id: int | None = None
    # Configuration set by users (Traccar's device "attributes": speedLimit ...),
    # not the status attributes devices report.
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


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
    geofence_id: int | None = None        # the zone of geofence events

    @property
    def subject(self) -> str:
        return event_subject(self.attributes, self.geofence_id)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    device_id: int
    type: str
    event_time: dt.datetime
    position_id: int | None
    attributes: Mapping[str, Any]
    geofence_id: int | None = None

    @property
    def subject(self) -> str:
        return event_subject(self.attributes, self.geofence_id)


def event_subject(attributes: Mapping[str, Any], geofence_id: int | None) -> str:
    """What an event is about within its type, part of its unique key: the alarm
    value, else the geofence id, else the rule id, else the attribute (sensor
    rules), else ""."""
    for key in ("alarm", "geofenceId", "ruleId", "attribute"):
        value = attributes.get(key)
        if value is not None and value != "":
            return str(value)[:128]
    return "" if geofence_id is None else str(geofence_id)


@dataclasses.dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Latest status of a device (last seen, attributes of a heartbeat)."""

    device_id: int
    last_update: dt.datetime
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Where a batch came from: what a quarantine entry keeps of it."""

    protocol: str
    unique_id: str | None = None
    remote_address: str | None = None
    raw: bytes = b""                  # the wire frame (for HTTP: URL and body)


@dataclasses.dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """Device data that cannot be stored for good, kept for the operator.

    `error` says why (the database's message, or the sanitiser's); `frame_hex` is
    the raw frame, truncated to `QUARANTINE_HEX_CHARS`."""

    received: dt.datetime
    protocol: str
    error: str
    frame_hex: str
    device_id: int | None = None
    unique_id: str | None = None
    remote_address: str | None = None

    @classmethod
    def of(cls, origin: Origin, error: str, received: dt.datetime,
           device_id: int | None = None) -> QuarantineEntry:
        """The entry for a batch from `origin` refused with `error`: text fields are
        cut to their columns and made ASCII-safe (the error may quote the bad value)."""
        return cls(received=received, protocol=origin.protocol[:64],
                   error=_ascii(error)[:QUARANTINE_ERROR_CHARS],
                   frame_hex=origin.raw[:QUARANTINE_HEX_CHARS // 2].hex(),
                   device_id=device_id,
                   unique_id=_ascii(origin.unique_id)[:128] if origin.unique_id else None,
                   remote_address=(_ascii(origin.remote_address)[:128]
                                   if origin.remote_address else None))


QUARANTINE_HEX_CHARS = 8192     # the frame_hex column
QUARANTINE_ERROR_CHARS = 1000   # the error column


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii")


@dataclasses.dataclass(frozen=True, slots=True)
class StoredQuarantine:
    id: int
    entry: QuarantineEntry


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """What the batch writer commits in ONE transaction.

    `origin` names the frame the batch came from (None for the server's own
    batches: rule ticks, connection events); `quarantine` holds entries for data
    refused before storage (the sanitiser), committed like the rest."""

    positions: tuple[NewPosition, ...] = ()
    events: tuple[NewEvent, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    states: tuple[RuleState, ...] = ()   # rule state after these records (upserted)
    quarantine: tuple[QuarantineEntry, ...] = ()
    origin: Origin | None = None

    def is_empty(self) -> bool:
        return not (self.positions or self.events or self.statuses or self.states
                    or self.quarantine)


@dataclasses.dataclass(frozen=True, slots=True)
class RuleState:
    """A device's rule engine state (`geofence.engine.DeviceState.to_json()`), stored
    in the same transaction as the positions and events that produced it, so a
    restart resumes exactly where the committed data ends."""

    device_id: int
    state: Mapping[str, Any]


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


@dataclasses.dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    timezone: str = "UTC"     # IANA name; calendars and local times use it


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    id: int
    organisation_id: int
    name: str
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # speedLimit ...


@dataclasses.dataclass(frozen=True, slots=True)
class Geofence:
    """A stored zone.  `geometry` is a GeoJSON Feature in (lon, lat): Polygon or
    MultiPolygon, Point with properties.radius_m (circle), LineString with
    properties.width_m (corridor); `geofence.zones.from_geojson` builds the Zone."""

    id: int
    organisation_id: int
    name: str
    geometry: Mapping[str, Any]
    description: str = ""
    calendar_id: int | None = None
    # speedLimit (knots), dwellMinutes, hysteresisMeters, hysteresisFixes, ...
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Calendar:
    """Active hours, `data` as `geofence.calendar.Calendar.from_json` reads it."""

    id: int
    organisation_id: int
    name: str
    data: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """A user rule, `definition` as `geofence.rules.parse_rule` reads it."""

    id: int
    organisation_id: int
    name: str
    definition: Mapping[str, Any]
    enabled: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class RuleConfig:
    """Everything the rule engine needs, read in one go (`Store.rule_config`)."""

    revision: int
    organisations: tuple[Organisation, ...]
    devices: tuple[Device, ...]
    groups: tuple[Group, ...]
    geofences: tuple[Geofence, ...]
    calendars: tuple[Calendar, ...]
    rules: tuple[Rule, ...]
    device_geofences: tuple[tuple[int, int], ...]   # (device_id, geofence_id)
    group_geofences: tuple[tuple[int, int], ...]    # (group_id, geofence_id)


@dataclasses.dataclass(frozen=True, slots=True)
class PushToken:
    """A phone's (or hook's, or mailbox's) address on one push channel.  `token` is
    a secret: log `tracker.push.base.mask(token)` only."""

    id: int
    user_id: int
    channel: str
    platform: str
    token: str
    created: dt.datetime
    disabled: dt.datetime | None = None
    disabled_reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxItem:
    """An event to notify, with its device, place and zone name.  `outbox_id` is
    None when read for an existing delivery (`Store.notification_context`)."""

    outbox_id: int | None
    event: StoredEvent
    device: Device
    latitude: float | None = None     # of the event's position, when it has one
    longitude: float | None = None
    zone_name: str | None = None      # of the event's geofence, when it still exists


@dataclasses.dataclass(frozen=True, slots=True)
class NewDelivery:
    event_id: int
    token_id: int
    user_id: int
    channel: str
    token_hash: str
    status: str = "pending"       # or coalesced / suppressed (never sent)


@dataclasses.dataclass(frozen=True, slots=True)
class DueDelivery:
    """A pending delivery whose time has come, with what sending it needs."""

    id: int
    event_id: int
    user_id: int
    attempts: int
    token: PushToken


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    event_id: int
    user_id: int
    channel: str
    token_hash: str
    status: str
    attempts: int
    last_error: str | None
    updated: dt.datetime


# Traccar notificator names -> our channels ("web", "sms", "telegram" ... have none).
PUSH_CHANNELS = frozenset({"fcm", "jpush", "huawei", "xiaomi", "oppo", "vivo", "apns"})
NOTIFICATORS: Mapping[str, frozenset[str]] = {
    "firebase": PUSH_CHANNELS, "traccar": PUSH_CHANNELS, "mail": frozenset({"email"}),
    "webhook": frozenset({"webhook"}),
}


@dataclasses.dataclass(frozen=True, slots=True)
class TraccarNotification:
    """A Traccar-shaped subscription (``/api/notifications``): an event type, for
    alarms optionally ``attributes.alarms`` ("sos,powerCut"), sent through its
    notificators ("firebase,mail").  With `always` it covers every device the user
    may see; without, only the devices in `device_ids` and those of the groups in
    `group_ids` (Traccar's ``{deviceId|groupId, notificationId}`` permissions)."""

    id: int
    user_id: int
    type: str
    always: bool
    notificators: str
    attributes: Mapping[str, Any]
    device_ids: frozenset[int] = frozenset()
    group_ids: frozenset[int] = frozenset()

    def covers(self, device_id: int, group_id: int | None) -> bool:
        """Whether the notification applies to that device (in that group, or None)."""
        return self.always or device_id in self.device_ids or group_id in self.group_ids

    def wants(self, event_type: str, attributes: Mapping[str, Any], device_id: int,
              group_id: int | None) -> bool:
        if event_type != self.type or not self.covers(device_id, group_id):
            return False
        alarms = str(self.attributes.get("alarms") or "")
        if event_type == "alarm" and alarms:
            return str(attributes.get("alarm", "")) in {a.strip() for a in alarms.split(",")}
        return True

    @property
    def channels(self) -> frozenset[str]:
        names = {n.strip() for n in self.notificators.split(",") if n.strip()}
        return frozenset().union(*(NOTIFICATORS.get(name, frozenset()) for name in names))
