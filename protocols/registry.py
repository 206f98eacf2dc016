"""The registered codecs, by name.  A new protocol is a module plus a line here.

Each protocol module exports `CODEC` (the server side) and `DEVICE` (the device
side, for the simulator and tests).
"""

# One line per protocol, so that adding one is a one-line change.
# isort: off
from protocols import gl200
from protocols import gps103
from protocols import gt06
from protocols import h02
from protocols import jt808
from protocols import meitrack
from protocols import osmand
from protocols import suntech
from protocols import teltonika
from protocols import tk103
from protocols import watch
from protocols import wialon
# isort: on
from protocols.base import Codec, DeviceSide, ProtocolError

PROTOCOL_MODULES = [   # one line per protocol, alphabetical
    gl200,
    gps103,
    gt06,
    h02,
    jt808,
    meitrack,
    osmand,
    suntech,
    teltonika,
    tk103,
    watch,
    wialon,
]

CODECS: dict[str, Codec] = {module.CODEC.name: module.CODEC for module in PROTOCOL_MODULES}
DEVICES: dict[str, DeviceSide] = {module.CODEC.name: module.DEVICE for module in PROTOCOL_MODULES}


def get_codec(name: str) -> Codec:
    """The codec called `name`; ValueError naming the known ones otherwise."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(sorted(CODECS))}") from None


def get_device_side(name: str) -> DeviceSide:
    """The device side of protocol `name`, for simulators; ValueError if unknown."""
    get_codec(name)
    return DEVICES[name]


__all__ = ["CODECS", "DEVICES", "ProtocolError", "get_codec", "get_device_side"]
