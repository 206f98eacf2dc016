"""Device protocol codecs, sans-IO: bytes in, messages and reply bytes out.

Standard library only; never imports Twisted, SQLAlchemy, `geofence` or the clock.
`CODECS` maps a protocol name to its codec; `replay` is the conformance interface
described in DESIGN.md.
"""

from protocols.base import (
    Codec,
    CommandResult,
    Frame,
    HttpRequest,
    Login,
    Message,
    Position,
    ProtocolError,
    Session,
)
from protocols.registry import CODECS, get_codec
from protocols.replay import replay

__all__ = [
    "CODECS", "Codec", "CommandResult", "Frame", "HttpRequest", "Login", "Message",
    "Position", "ProtocolError", "Session", "get_codec", "replay",
]
