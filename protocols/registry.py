"""The registered codecs, by name.  A new protocol is a module plus a line here
(and its device side, for the simulator, a module in `protocols.devices` plus a
line in `DEVICE_MODULES`).

Each protocol module exports `CODEC` (the server side); each module of
`protocols.devices` exports `DEVICE` (the device side, for the simulator and
tests), under its codec module's name.
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
from protocols.devices import gl200 as gl200_device
from protocols.devices import gps103 as gps103_device
from protocols.devices import gt06 as gt06_device
from protocols.devices import h02 as h02_device
from protocols.devices import jt808 as jt808_device
from protocols.devices import meitrack as meitrack_device
from protocols.devices import osmand as osmand_device
from protocols.devices import suntech as suntech_device
from protocols.devices import teltonika as teltonika_device
from protocols.devices import tk103 as tk103_device
from protocols.devices import watch as watch_device
from protocols.devices import wialon as wialon_device
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

DEVICE_MODULES = {   # protocol name -> its device side's module, one line per protocol
    "gl200": gl200_device,
    "gps103": gps103_device,
    "gt06": gt06_device,
    "h02": h02_device,
    "jt808": jt808_device,
    "meitrack": meitrack_device,
    "osmand": osmand_device,
    "suntech": suntech_device,
    "teltonika": teltonika_device,
    "tk103": tk103_device,
    "watch": watch_device,
    "wialon": wialon_device,
}

CODECS: dict[str, Codec] = {module.CODEC.name: module.CODEC for module in PROTOCOL_MODULES}
DEVICES: dict[str, DeviceSide] = {name: module.DEVICE for name, module in DEVICE_MODULES.items()}


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
