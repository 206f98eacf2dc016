"""Turns decoded messages of one identified device into what gets stored.

The ordered list of position handlers (Traccar's idea, without its database calls):
sanitiser (`tracker.sanitize`: one boundary for every protocol; a value no
database stores refuses the whole frame before anything is evaluated) ->
plausibility filter -> archive flag for late fixes -> rule engine (geofences,
overspeed, alarms, ignition, motion, user rules: `tracker.rules`) -> status.
No I/O here (the rule engine works on in-memory state), so the adapters can call it
on the reactor thread and hand the result to the batch writer, which commits the
positions, their events and the device's rule state in one transaction.

Decisions:
- A record without a fix of its own (`outdated`, e.g. a GT06 heartbeat) is not a
  position: it updates the device's status (last seen, attributes) and may raise an
  alarm event; the device's last stored position stays its place.
- A fix whose coordinates are out of range, or whose time is more than 25 h ahead
  of `now`, is dropped with a log line (Traccar's plausibility limits).
- A fix older than the newest live one of the device is stored with
  `archive=True` (history upload after a coverage gap) and fires no event: live
  events fire once, in fix order.  The newest fix time is part of the rule state,
  so this also holds across restarts.
- A fix the device marks invalid (no GPS lock: the last known place) is stored but
  is no evidence of where the device is: it feeds only the attribute rules
  (alarms, ignition, sensors), like a heartbeat.
- Events are unique per device, type, time and subject (`NewEvent.subject`), so a
  retransmitted frame stores its events once.
- A device's answer to a command becomes a `commandResult` event (attributes
  {"result": text}) at server time; storage marks the command answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from twisted.logger import Logger

from protocols import CommandResult, Message, Position
from tracker.models import Batch, Device, NewEvent, NewPosition, Origin, StatusUpdate
from tracker.rules import RuleService
from tracker.sanitize import clean_message

log = Logger()

MAX_FUTURE = dt.timedelta(hours=25)


def build_batch(device: Device, protocol: str, messages: Iterable[Message],
                rules: RuleService, now: dt.datetime, *, origin: Origin | None = None) -> Batch:
    """The Batch to store for the messages decoded from one frame of `device`
    (logins are ignored: identification happened before), with the events the
    rule engine derives and the device's rule state after them.

    Every record passes `tracker.sanitize.clean_message` first, before the rule
    engine sees any of them: `Unstorable` (raised here) means the whole frame is
    refused and nothing of it was evaluated."""
    records = [clean_message(m) for m in messages if isinstance(m, Position | CommandResult)]
    new_positions: list[NewPosition] = []
    events: list[NewEvent] = []
    statuses: list[StatusUpdate] = []
    evaluated = False
    for position in records:
        if isinstance(position, CommandResult):
            events.append(NewEvent(device.id, "commandResult", now, {"result": position.text}))
            continue
        if position.outdated:
            statuses.append(StatusUpdate(device.id, now, position.attributes))
            events.extend(rules.on_status(device, position.attributes, position.fix_time, now))
            evaluated = True
            continue
        if not _plausible(position, now):
            log.warn("dropping implausible position of {unique_id} ({protocol}): "
                     "time {time} lat {lat} lon {lon}", unique_id=device.unique_id,
                     protocol=protocol, time=position.fix_time, lat=position.latitude,
                     lon=position.longitude)
            continue
        archive = rules.is_late(device, position.fix_time)
        if not archive:
            evaluated = True
            if position.valid:
                events.extend(rules.on_fix(device, position, now))
            else:
                events.extend(rules.on_status(device, position.attributes, position.fix_time, now))
        new_positions.append(_new_position(device, protocol, position, now, archive))
    if new_positions and not statuses:
        statuses.append(StatusUpdate(device.id, now, {}))
    states = (rules.snapshot(device),) if evaluated else ()
    return Batch(tuple(new_positions), tuple(events), tuple(statuses), states, origin=origin)


def _plausible(position: Position, now: dt.datetime) -> bool:
    return (-90.0 <= position.latitude <= 90.0 and -180.0 <= position.longitude <= 180.0
            and position.fix_time <= now + MAX_FUTURE)


def _new_position(device: Device, protocol: str, position: Position,
                  now: dt.datetime, archive: bool) -> NewPosition:
    return NewPosition(
        device_id=device.id, protocol=protocol, server_time=now,
        device_time=position.device_time or position.fix_time, fix_time=position.fix_time,
        valid=position.valid, latitude=position.latitude, longitude=position.longitude,
        altitude_m=position.altitude_m, speed_kn=position.speed_kn,
        course_deg=position.course_deg, accuracy_m=position.accuracy_m,
        attributes=position.attributes, network=position.network, archive=archive,
    )
