"""Turns decoded messages of one identified device into what gets stored.

The ordered list of position handlers (Traccar's idea, without its database calls):
plausibility filter -> archive flag for late fixes -> alarm events -> status.
Pure functions of the messages, the device and `now`: no I/O here, so the adapters
can call it on the reactor thread and hand the result to the batch writer.

Decisions:
- A record without a fix of its own (`outdated`, e.g. a GT06 heartbeat) is not a
  position: it updates the device's status (last seen, attributes) and may raise an
  alarm event; the device's last stored position stays its place.
- A fix whose coordinates are out of range, or whose time is more than 25 h ahead
  of `now`, is dropped with a log line (Traccar's plausibility limits).
- A fix older than the newest one seen from the device is stored with
  `archive=True` (history upload after a coverage gap) and fires no alarm event.
- A protocol alarm becomes an `alarm` event, unique per device, time and value, so
  a retransmitted alarm is stored once.
- A device's answer to a command becomes a `commandResult` event (attributes
  {"result": text}) at server time; storage marks the command answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from twisted.logger import Logger

from protocols import CommandResult, Message, Position
from tracker.models import Batch, Device, NewEvent, NewPosition, StatusUpdate

log = Logger()

MAX_FUTURE = dt.timedelta(hours=25)


class DeviceTrack:
    """What the pipeline remembers of one device between frames."""

    __slots__ = ("latest_fix",)

    def __init__(self, latest_fix: dt.datetime | None = None) -> None:
        self.latest_fix = latest_fix


def build_batch(device: Device, protocol: str, messages: Iterable[Message],
                track: DeviceTrack, now: dt.datetime) -> Batch:
    """The Batch to store for the messages decoded from one frame of `device`
    (logins are ignored: identification happened before)."""
    new_positions: list[NewPosition] = []
    events: list[NewEvent] = []
    statuses: list[StatusUpdate] = []
    for position in messages:
        if isinstance(position, CommandResult):
            events.append(NewEvent(device.id, "commandResult", now, {"result": position.text}))
            continue
        if not isinstance(position, Position):
            continue
        if position.outdated:
            statuses.append(StatusUpdate(device.id, now, dict(position.attributes)))
            events.extend(_alarm_events(device, position, fix_time=None))
            continue
        if not _plausible(position, now):
            log.warn("dropping implausible position of {unique_id} ({protocol}): "
                     "time {time} lat {lat} lon {lon}", unique_id=device.unique_id,
                     protocol=protocol, time=position.fix_time, lat=position.latitude,
                     lon=position.longitude)
            continue
        archive = track.latest_fix is not None and position.fix_time < track.latest_fix
        if not archive:
            track.latest_fix = position.fix_time
            events.extend(_alarm_events(device, position, fix_time=position.fix_time))
        new_positions.append(_new_position(device, protocol, position, now, archive))
    if new_positions and not statuses:
        statuses.append(StatusUpdate(device.id, now, {}))
    return Batch(tuple(new_positions), tuple(events), tuple(statuses))


def _plausible(position: Position, now: dt.datetime) -> bool:
    return (-90.0 <= position.latitude <= 90.0 and -180.0 <= position.longitude <= 180.0
            and position.fix_time <= now + MAX_FUTURE)


def _alarm_events(device: Device, position: Position,
                  fix_time: dt.datetime | None) -> list[NewEvent]:
    alarm = position.attributes.get("alarm")
    if not alarm:
        return []
    return [NewEvent(device.id, "alarm", position.fix_time, {"alarm": alarm}, fix_time)]


def _new_position(device: Device, protocol: str, position: Position,
                  now: dt.datetime, archive: bool) -> NewPosition:
    return NewPosition(
        device_id=device.id, protocol=protocol, server_time=now,
        device_time=position.device_time or position.fix_time, fix_time=position.fix_time,
        valid=position.valid, latitude=position.latitude, longitude=position.longitude,
        altitude_m=position.altitude_m, speed_kn=position.speed_kn,
        course_deg=position.course_deg, accuracy_m=position.accuracy_m,
        attributes=dict(position.attributes), network=position.network, archive=archive,
    )
