"""The text frame envelope and the record builders every text decoder uses.

Envelope: "+RESP:GTxxx," / "+BUFF:GTxxx," (live / buffered report),
"+ACK:GTxxx," (answer to a command, or the GTHBD heartbeat), then the
protocol version (6 characters: device type 2 hex + firmware version 4 hex;
10 hex on newer firmware), the unique id (IMEI, or a 14 hex-digit MEID),
the report's own fields, the send time (YYYYMMDDhhmmss UTC) and the count
number (4 hex digits), then "$".  Pre-2012 GT300/GL100 frames have no
protocol version (the IMEI comes first).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Any

from protocols.base import Position, ProtocolError
from protocols.gl200.fields import Fix, parse_time


@enum.unique
class Model(enum.IntEnum):
    """Device type codes (first two hex digits of the protocol version) whose
    reports need a dialect of their own."""

    GV200 = 0x04            # GTERI: digital inputs and outputs as two bytes
    GV200_OBSERVED = 0x35   # same layout, seen in captures of GV200 units
    ATW = 0x42              # GT501 / Bolt (ATW firmware): longer GTFRI preamble


_HEAD = re.compile(r"\+(RESP|BUFF|ACK):GT([A-Z0-9]{3,6})")
_VERSION = re.compile(r"[0-9A-Z]{6}|[0-9A-Fa-f]{10}")
_UNIQUE_ID = re.compile(r"\d{15,17}|[0-9A-Fa-f]{14}")


@dataclasses.dataclass(frozen=True, slots=True)
class TextMessage:
    """One text frame split into fields (the trailing "$" removed).

    `body` is the index of the first field after the unique id; `version`
    is None for the old layout without protocol version; `count` is the
    count number as sent (used in SACK replies)."""

    kind: str
    type: str
    fields: tuple[str, ...]
    version: str | None
    unique_id: str | None
    body: int
    send_time: dt.datetime | None
    count: str

    @property
    def model(self) -> int | None:
        """Device type code: the first two hex digits of the protocol version."""
        if self.version is None:
            return None
        try:
            return int(self.version[:2], 16)
        except ValueError:
            return None

    @property
    def send_index(self) -> int:
        """Index of the send-time field (second to last)."""
        return len(self.fields) - 2


def parse_text(frame: bytes) -> TextMessage:
    """Split one text frame; ProtocolError when it is not an @Track frame."""
    text = frame.decode("latin-1").strip()
    if text.endswith("$"):
        text = text[:-1]
    head = _HEAD.match(text)
    if head is None:
        raise ProtocolError("gl200: not an @Track text frame", frame[:64])
    fields = tuple(text.split(","))
    if len(fields) < 3:
        raise ProtocolError("gl200: text frame too short", frame[:64])
    version: str | None = None
    unique_id: str | None = None
    body = 1
    if _VERSION.fullmatch(fields[1]) and _UNIQUE_ID.fullmatch(fields[2]):
        version, unique_id, body = fields[1], fields[2], 3
    elif _UNIQUE_ID.fullmatch(fields[1]):
        unique_id, body = fields[1], 2
    return TextMessage(head.group(1), head.group(2), fields, version, unique_id, body,
                       parse_time(fields[-2]) if len(fields) > 3 else None, fields[-1])


def position(msg: TextMessage, fix: Fix, attrs: Mapping[str, Any], now: dt.datetime, *,
             valid: bool = True, network: Mapping[str, Any] | None = None) -> Position:
    """A located record (or, for an unlocated Fix, an outdated one that
    keeps `valid` as given: the FRI family reports it so)."""
    if not fix.located:
        return outdated(msg, attrs, now=now, valid=valid, network=network)
    assert fix.time is not None
    return Position(
        fix_time=fix.time, valid=valid, latitude=fix.latitude, longitude=fix.longitude,
        altitude_m=fix.altitude_m, speed_kn=fix.speed_kn, course_deg=fix.course_deg,
        device_time=msg.send_time or fix.time, attributes=dict(attrs), network=network,
        unique_id=msg.unique_id)


def outdated(msg: TextMessage, attrs: Mapping[str, Any], *, now: dt.datetime | None,
             valid: bool = False, network: Mapping[str, Any] | None = None) -> Position:
    """A status record without a fix of its own (time: the send time, else
    `now`, else the Unix epoch)."""
    when = msg.send_time or now or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return Position(fix_time=when, valid=valid, latitude=0.0, longitude=0.0, outdated=True,
                    device_time=msg.send_time, attributes=dict(attrs), network=network,
                    unique_id=msg.unique_id)


__all__ = ["Model", "TextMessage", "outdated", "parse_text", "position"]
