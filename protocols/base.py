"""The shapes every codec shares: decoded messages, frames, sessions and errors.

A codec is sans-IO (in the manner of h11): bytes go in, `Frame` values come out.
Each `Frame` carries the messages decoded from one wire frame and the reply bytes
the device expects for it.  The server writes a frame's reply only once the frame's
messages are durable (store-then-ack), so codecs never write replies themselves.

Times are timezone-aware UTC datetimes; `now` is always passed in.  Coordinates are
WGS84 degrees, speed is in knots, course in degrees, altitude and accuracy in metres.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Protocol


class ProtocolError(Exception):
    """The peer sent something we cannot decode (garbage, bad checksum, oversize).

    Anything else raised from a codec is a bug in the codec.  `frame` holds the
    offending bytes when they are known, for the log line.
    """

    def __init__(self, message: str, frame: bytes = b"") -> None:
        super().__init__(message)
        self.frame = frame


@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    """The device said who it is (IMEI or other unique id)."""

    unique_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """One position or status record, in Traccar's vocabulary.

    `outdated` is True for a record carrying status but no fix of its own
    (heartbeat, status report); its place is then the device's last known one and
    the coordinates here are meaningless.  `unique_id` is None when the frame did
    not name the device; the session's logged-in id applies then.
    `attributes` uses Traccar's keys (`ignition`, `power` V, `batteryLevel` %,
    `alarm`, `sat`, `rssi`, `odometer` m ...).
    """

    fix_time: dt.datetime
    valid: bool
    latitude: float
    longitude: float
    altitude_m: float = 0.0
    speed_kn: float = 0.0
    course_deg: float = 0.0
    accuracy_m: float = 0.0
    device_time: dt.datetime | None = None
    outdated: bool = False
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    network: Mapping[str, Any] | None = None
    unique_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CommandResult:
    """The device's answer to a downlink command."""

    text: str
    unique_id: str | None = None


Message = Login | Position | CommandResult


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """A downlink command, in Traccar's vocabulary.

    `type` is one of Traccar's command types: "engineStop", "engineResume",
    "rebootDevice", "positionSingle", "positionPeriodic" (attributes["frequency"]
    in seconds), "custom" (attributes["data"]: the text or hex the protocol takes).
    `id` is the server's command id; a codec may use it as the frame's serial number.
    """

    type: str
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    id: int = 0


class UnsupportedCommand(ValueError):
    """The protocol (or this device's dialect) cannot carry this command."""


COMMAND_TYPES = frozenset({
    "engineStop", "engineResume", "rebootDevice", "positionSingle", "positionPeriodic", "custom",
})


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """Everything decoded from one wire frame.

    `reply` is what the device expects back for this frame (b"" for nothing).
    The server sends it after `messages` are stored; for a frame with no position
    (a login, a heartbeat without status) it may be sent at once.
    `raw` is the frame as received, for logs.
    `refusal` is the protocol's negative answer for this frame (b"" when it has
    none): sent instead of `reply` when the server cannot store the data for good
    (quarantine); without one the server closes the connection.
    """

    messages: tuple[Message, ...]
    reply: bytes = b""
    raw: bytes = b""
    refusal: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request, for HTTP-carried protocols (OsmAnd ...)."""

    method: str
    url: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""


class Session(Protocol):
    """Per-connection decoder state (logged-in id, serial numbers, dialect)."""

    unique_id: str | None

    def receive_data(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """Feed stream bytes (TCP); return the frames they completed, in order.

        Buffers partial frames; raises ProtocolError on garbage it cannot skip or
        on a frame over the codec's size cap.
        """

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """Decode one whole datagram (UDP); it holds one or more whole frames."""

    def decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode exactly one frame as the framer delivers it.

        HTTP protocols take an `HttpRequest` here; the Frame's `reply` is then the
        response body (sent with status 200 once the data is stored).
        """

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """The bytes that carry `command` to this session's device.

        Raises UnsupportedCommand when the protocol cannot carry it.
        """


@dataclasses.dataclass(frozen=True, slots=True)
class CodecSpec:
    """A codec as the registry sees it: every protocol module's `CODEC` is one.

    `session_factory(options)` makes the per-connection session.
    """

    name: str
    default_listen: tuple[str, ...]
    max_frame_bytes: int
    command_types: frozenset[str]
    session_factory: Callable[[Mapping[str, Any] | None], Session]

    def new_session(self, options: Mapping[str, Any] | None = None) -> Session:
        return self.session_factory(options)


class Codec(Protocol):
    """A protocol: its name, default listen addresses and a session factory.

    `default_listen` uses Traccar's port numbers ("tcp:5023", "udp:5023",
    "http:5055" for protocols carried in HTTP requests).  `command_types` lists
    the `Command.type` values `encode_command` accepts.
    """

    name: str
    default_listen: tuple[str, ...]
    max_frame_bytes: int
    command_types: frozenset[str]

    def new_session(self, options: Mapping[str, Any] | None = None) -> Session:
        """A fresh per-connection session."""


# --- the device side, for the simulator and tests (the server never uses it) ---


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceReport:
    """One position report a simulated device sends (speed in knots)."""

    fix_time: dt.datetime
    latitude: float
    longitude: float
    speed_kn: float = 0.0
    course_deg: float = 0.0
    valid: bool = True
    alarm: str | None = None   # a Traccar alarm value ("sos", "powerCut" ...) or None


class AckReader(Protocol):
    """Device side: reads the server's replies."""

    def receive_data(self, data: bytes) -> list[int | None]:
        """Buffer `data`; return one token per whole reply it completed, in order:
        the serial number the reply acknowledges, or None when the reply carries
        none (it then acknowledges the oldest unacknowledged message).  Replies
        that acknowledge nothing (e.g. a time reply) yield no token."""


class DeviceSide(Protocol):
    """How a device of this protocol talks, for `tracker simulate` and tests.

    `transport` is "tcp", "udp" or "http".  `acks_login` / `acks_reports` say
    whether the server answers a login / each report, so the simulator knows what
    to wait for; `heartbeat` returns b"" for protocols without one.  For HTTP
    protocols `report` returns an HttpRequest (the path and query or body; the
    simulator sends it to the server's port) and the answer is the HTTP status.
    """

    transport: str
    acks_login: bool
    acks_reports: bool

    def login(self, unique_id: str, serial: int) -> bytes:
        """What the device sends first on a connection (b"" when nothing)."""

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes | HttpRequest:
        """One position report (with report.alarm as the protocol's alarm, if any)."""

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        """A keep-alive / status message (b"" when the protocol has none)."""

    def ack_reader(self) -> AckReader:
        """A fresh reader for one connection's server replies."""
