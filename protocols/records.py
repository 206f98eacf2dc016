"""Position -> JSON-ready record in Traccar's vocabulary (shared by replay and the server).

A record is a plain dict with the keys Traccar's API and forwarders use:
`protocol`, `uniqueId`, `fixTime`, `deviceTime` (ISO 8601 UTC with
milliseconds and "Z", or None), `valid`, `latitude`, `longitude`, `altitude`
(m), `speed` (knots), `course` (deg), `accuracy` (m), `attributes`, `network`
when the position carries cell towers or Wi-Fi, and `outdated: True` only for
records without a fix of their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocols.base import Position


def iso_time(value: dt.datetime) -> str:
    """Aware datetime -> "2022-09-07T16:00:00.000Z" (UTC, milliseconds).

    A naive datetime is refused: every time in the codecs is aware.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: codecs must produce aware UTC times")
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def position_record(position: Position, protocol: str, unique_id: str | None) -> dict[str, Any]:
    """The record for one decoded position.

    `unique_id` is the device id to report: the position's own when the frame
    named the device, else the session's logged-in id (the caller decides).
    """
    record: dict[str, Any] = {
        "protocol": protocol,
        "uniqueId": position.unique_id or unique_id,
        "fixTime": iso_time(position.fix_time),
        "deviceTime": iso_time(position.device_time) if position.device_time else None,
        "valid": position.valid,
        "latitude": position.latitude,
        "longitude": position.longitude,
        "altitude": position.altitude_m,
        "speed": position.speed_kn,
        "course": position.course_deg,
        "accuracy": position.accuracy_m,
        "attributes": dict(position.attributes),
    }
    if position.network is not None:
        record["network"] = dict(position.network)
    if position.outdated:
        record["outdated"] = True
    return record


__all__ = ["iso_time", "position_record"]
