"""Device protocol codecs, sans-IO: bytes in, messages and reply bytes out.

Standard library only; never imports Twisted, SQLAlchemy, `geofence` or the clock.
`CODECS` maps a protocol name to its codec; `replay` is the conformance interface
described in DESIGN.md.
"""

from protocols.base import (
    COMMAND_TYPES,
    AckReader,
    Codec,
    Command,
    CommandResult,
    DeviceReport,
    DeviceSide,
    Frame,
    HttpRequest,
    Login,
    Message,
    Position,
    ProtocolError,
    Session,
    UnsupportedCommand,
)
from protocols.registry import CODECS, get_codec, get_device_side
from protocols.replay import replay

__all__ = [
    "COMMAND_TYPES", "AckReader", "Command", "DeviceReport", "DeviceSide", "UnsupportedCommand",
    "get_device_side",
    "CODECS", "Codec", "CommandResult", "Frame", "HttpRequest", "Login", "Message",
    "Position", "ProtocolError", "Session", "get_codec", "replay",
]
