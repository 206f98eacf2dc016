"""Teltonika FMB / FMC / FMM (and older FM / GH) binary protocol: framing, decoding, acks, commands.

Spec followed: Teltonika "Codec" documentation (wiki.teltonika-gps.com, "Codec" page:
Codec 8, Codec 8 Extended, Codec 16, Codec 12, Codec 13, Codec 14, as of FMB firmware
03.28), the "Data Sending Parameters ID" tables for FMB/FMC/FMM (AVL IDs, units and
multipliers), the GH3000 protocol description (Codec 7) and the "Parsing of Beacon
records" page (AVL ID 385).  Where only device captures tell the layout (the BLE tag
lists in AVL IDs 548 / 10831 / 11317, the axle-scale text), the decoder says so
("observed"), the captures being those of Traccar's test suite.

Transports: TCP (a byte stream, `receive_data`) and UDP (one AVL packet per datagram,
`receive_datagram`), both on port 5027 as in Traccar.

TCP framing (no escaping, big endian throughout):

    IMEI hello:  length (2) | IMEI as ASCII digits        -> server answers 0x01 (accept)
    AVL packet:  00 00 00 00 | data length (4) | data | CRC (4)
                 data = codec id | record count | records | record count
                 -> server answers the record count as 4 bytes
    ping:        a single 0xFF byte between packets (keep-alive, no answer)

The CRC is CRC-16/IBM (ARC: reflected polynomial 0xA001, init 0, no xorout) over
`data`, sent in the low half of the 4-byte field.  Frames larger than `MAX_FRAME_BYTES`
are refused; bytes that start no frame are skipped (at most `MAX_FRAME_BYTES` of them
in a row).

UDP framing:  length (2, bytes after it) | packet id (2) | 0x01 | AVL packet id (1) |
IMEI length (2) | IMEI | data (as above, without preamble, length and CRC)
-> server answers 00 05 | packet id | 01 | AVL packet id | accepted record count.

Codecs (the data's first byte): 0x08 Codec 8 (1-byte IO ids and counts), 0x8E Codec 8
Extended (2-byte ids and counts, plus variable-length elements), 0x10 Codec 16 (2-byte
ids, generation type byte), 0x07 GH3000 (Codec 7: masks, float coordinates, time in
seconds since 2007-01-01); 0x0C Codec 12 (text commands 0x05 / responses 0x06; type
0x0D carries camera file data, ignored), 0x0D Codec 13 (device message with a
timestamp), 0x0E Codec 14 (response naming the IMEI; 0x11 = IMEI mismatch).

Options (Traccar's per-device settings): `modelOverride` - a model of the FMB platform
(FMB*, FMC*, FMM*, FMT*, FMU*, FMP*) switches on that platform's AVL ID table (analog
inputs, ICCID, speed element 24, crash detection); `extended` - the Codec 8 dialect of
some FMB firmware with a fifth IO group of 16-byte values; `lenient` - CRCs and length
fields are not checked and packets are decoded as far as their bytes go (Traccar
checks neither; its test captures carry hand-edited frames).

Units and time: times are UTC (milliseconds since the Unix epoch; Codec 7 seconds
since 2007-01-01T00:00Z); coordinates are 1e-7 degrees (Codec 7: IEEE floats);
speed arrives in km/h and leaves in knots; altitude metres; voltages V (`power`,
`battery`, `adc1`...), odometers metres, tag/beacon voltages mV as sent.

The device side (simulator and tests; the server never uses it) is
`protocols.devices.teltonika`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import heapq
import struct
from collections.abc import Callable, Mapping
from typing import Any

from protocols.base import (
    CodecSpec,
    Command,
    CommandResult,
    Frame,
    Login,
    Message,
    Position,
    ProtocolError,
    UnsupportedCommand,
)
from protocols.binary import Reader
from protocols.checksums import crc16_arc
from protocols.framing import StreamFramer, check_frame_size
from protocols.session import StreamSession
from protocols.values import KMH_PER_KNOT, add_alarm, cell_tower, network, option_flag

NAME = "teltonika"
DEFAULT_LISTEN = ("tcp:5027", "udp:5027")
MAX_FRAME_BYTES = 16384
"""Largest whole frame accepted (preamble to CRC).  FMB AVL packets stay under
1.3 KB and camera file chunks (Codec 12 type 0x0D) near 2 KB."""

MAX_IMEI_DIGITS = 20
PING = b"\xff"
ACCEPT = b"\x01"
PREAMBLE = b"\x00\x00\x00\x00"
RESYNC_CRC_PER_BYTE = 16
"""Bytes the framer may CRC, per byte received, looking for a good packet
behind a bad or stalled one (see `Framer`)."""
RESYNC_CRC_CREDIT = 8
"""...and at most this many frames' worth of such bytes saved up."""
_GH_EPOCH = dt.datetime(2007, 1, 1, tzinfo=dt.UTC)
UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FMB_PLATFORM = ("FMB", "FMC", "FMM", "FMT", "FMU", "FMP")


@enum.unique
class CodecId(enum.IntEnum):
    """The data's first byte."""

    GH3000 = 0x07
    CODEC_8 = 0x08
    CODEC_8_EXTENDED = 0x8E
    CODEC_16 = 0x10
    CODEC_12 = 0x0C
    CODEC_13 = 0x0D
    CODEC_14 = 0x0E


@enum.unique
class MessageType(enum.IntEnum):
    """Codec 12/13/14 message types."""

    COMMAND = 0x05
    RESPONSE = 0x06
    FILE = 0x0D       # camera (DualCam) file transfer, not decoded
    NACK = 0x11       # Codec 14: the IMEI in the command is not this device's


AVL_CODECS = frozenset({CodecId.GH3000, CodecId.CODEC_8, CodecId.CODEC_8_EXTENDED, CodecId.CODEC_16})


# --------------------------------------------------------------------------
# CRC
# --------------------------------------------------------------------------

crc16_ibm = crc16_arc   # Teltonika's name for CRC-16/ARC


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

@enum.unique
class _Start(enum.Enum):
    PING = "ping"
    AVL = "avl"
    HELLO = "hello"
    PARTIAL = "partial"    # could be a start; more bytes needed to tell
    NONE = "none"


def _is_digits(data: bytes | bytearray) -> bool:
    return all(0x30 <= b <= 0x39 for b in data)


def _start_at(buf: bytearray, i: int) -> _Start:
    """What a frame starting at `buf[i]` would be."""
    if buf[i] == 0xFF:
        return _Start.PING
    if buf[i] != 0x00:
        return _Start.NONE
    if len(buf) < i + 2:
        return _Start.PARTIAL
    if buf[i + 1] == 0x00:
        head = buf[i:i + 4]
        if head == PREAMBLE:
            return _Start.AVL
        return _Start.PARTIAL if not any(head) else _Start.NONE
    size = buf[i + 1]
    if size > MAX_IMEI_DIGITS:
        return _Start.NONE
    digits = buf[i + 2:i + 2 + size]
    if not _is_digits(digits):
        return _Start.NONE
    return _Start.HELLO if len(digits) == size else _Start.PARTIAL


class Framer(StreamFramer):
    """Splits a TCP byte stream into hellos, pings and AVL / command packets.

    Bytes that start no frame are skipped (resynchronisation), at most
    `max_frame_bytes` of them in a row without a hello or packet: more raises
    `ProtocolError` (pings do not count as frames there).  An AVL packet whose
    length field exceeds `max_frame_bytes` or cannot hold a codec id and two
    counts raises `ProtocolError` after dropping its preamble; one with a bad CRC
    raises after dropping the whole packet, or only the bytes before a complete
    packet with a good CRC that starts inside it (the bad one was then zeros in
    garbage).  Lenient framers check no CRC.  For the same reason a preamble
    still waiting for its bytes is given up for a later complete packet with a
    good CRC.

    That search costs linear time however the bytes arrive: every later
    preamble is looked at once (stream offsets, see `StreamFramer.offset`), the
    CRC of each candidate packet is computed once, when its last byte is in,
    and the bytes CRC'd are paid for by bytes received (`RESYNC_CRC_PER_BYTE`
    each, at most `RESYNC_CRC_CREDIT` times `max_frame_bytes` saved up), so
    garbage full of zero runs that each announce a packet cannot make a
    connection spend a CRC over the whole buffer per byte.
    """

    name = NAME

    def __init__(self, *, lenient: bool = False, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        self.lenient = lenient
        self._scan_from = 0                          # stream offset: preambles before it are known
        self._pending: list[tuple[int, int]] = []    # heap of (end, start) offsets of candidates arriving
        self._good: list[int] = []                   # heap of start offsets of complete, good packets
        self._crc_credit = RESYNC_CRC_CREDIT * max_frame_bytes

    def feed(self, data: bytes) -> None:
        super().feed(data)
        self._crc_credit = min(self._crc_credit + RESYNC_CRC_PER_BYTE * len(data),
                               RESYNC_CRC_CREDIT * self.max_frame_bytes)

    def next_frame(self) -> bytes | None:
        """As `StreamFramer.next_frame`, but a ping is no good frame: it keeps
        the garbage count, so a peer sending stray 0xff bytes is still refused."""
        frame = self._next_frame()
        if frame is not None and frame != PING:
            self._skipped = 0
        return frame

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while True:
            kind = self._seek()
            if kind is _Start.PING:
                del buf[:1]
                return PING
            if kind is _Start.HELLO:
                size = 2 + buf[1]
                frame = bytes(buf[:size])
                del buf[:size]
                return frame
            if kind is not _Start.AVL:
                return None
            avl = self._avl()
            if avl is not None:
                return avl
            if not self._false_start():
                return None
            self._skip(1)

    def _seek(self) -> _Start:
        """Skip garbage up to the first possible frame start; say what it is."""
        buf = self._buffer
        for i in range(len(buf)):
            kind = _start_at(buf, i)
            if kind is not _Start.NONE:
                self._skip(i)
                return kind
        self._skip(len(buf))
        return _Start.NONE

    def _avl(self) -> bytes | None:
        """The AVL packet at the buffer's start, None while incomplete."""
        buf = self._buffer
        if len(buf) < 8:
            return None
        total = 12 + int.from_bytes(buf[4:8], "big")
        if total > self.max_frame_bytes:
            self._reject(f"declared packet size {total} exceeds {self.max_frame_bytes}", 4)
        if total < 15:
            self._reject(f"data length {total - 12} too small for codec id and counts", 4)
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        if not self.lenient and not crc_ok(frame):
            later = self._next_good_packet()
            del buf[:total if later < 0 else min(later, total)]
            raise ProtocolError(f"teltonika: bad CRC {frame[-4:].hex()}, computed "
                                f"{crc16_ibm(frame[8:-4]):08x}", frame)
        del buf[:total]
        return frame

    def _false_start(self) -> bool:
        """True when a later preamble in the buffer begins a complete packet with
        a good CRC while the one at the start still waits for bytes."""
        return not self.lenient and self._next_good_packet() > 0

    def _next_good_packet(self) -> int:
        """Index of the first packet with a good CRC complete in the buffer
        after its start, or -1 (see the class docstring for the cost)."""
        buf = self._buffer
        base = self.offset
        end = base + len(buf)
        at = max(self._scan_from, base + 1)
        while (index := buf.find(PREAMBLE, at - base)) >= 0 and index + 8 <= len(buf):
            total = 12 + int.from_bytes(buf[index + 4:index + 8], "big")
            if 15 <= total <= self.max_frame_bytes:
                heapq.heappush(self._pending, (base + index + total, base + index))
            at = base + index + 1
        # a preamble whose length field is not all in yet is looked at again next time
        self._scan_from = base + index if index >= 0 else max(at, end - len(PREAMBLE) + 1)
        while self._pending and self._pending[0][0] <= end:
            stop, start = self._pending[0]
            if start > base:
                if stop - start > self._crc_credit:
                    break              # the bytes still to come pay for it
                self._crc_credit -= stop - start
                if crc_ok(bytes(buf[start - base:stop - base])):
                    heapq.heappush(self._good, start)
            heapq.heappop(self._pending)
        while self._good and self._good[0] <= base:
            heapq.heappop(self._good)
        return self._good[0] - base if self._good else -1

def crc_ok(frame: bytes) -> bool:
    return crc16_ibm(frame[8:-4]) == int.from_bytes(frame[-4:], "big")


# --------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------

def _ms_time(ms: int) -> dt.datetime:
    """Milliseconds since the Unix epoch -> aware UTC datetime."""
    try:
        return UNIX_EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError as exc:
        raise ProtocolError(f"teltonika: timestamp {ms} ms out of range") from exc


def _printable(data: bytes) -> bool:
    return all(0x20 <= b <= 0x7E or b in (0x09, 0x0A, 0x0D) for b in data)


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Session settings: `model` (modelOverride, upper case), `extended` (Codec 8
    with a 16-byte IO group), `lenient` (no CRC / length checks)."""

    model: str = ""
    extended: bool = False
    lenient: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        options = options or {}
        model = str(options.get("modelOverride") or options.get("model") or "").upper()
        return cls(model=model, extended=option_flag(options.get("extended", False)),
                   lenient=option_flag(options.get("lenient", False)))

    @property
    def fmb(self) -> bool:
        """The model uses the FMB platform's AVL ID table."""
        return self.model.startswith(_FMB_PLATFORM)


# --------------------------------------------------------------------------
# IO elements -> attributes
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class IoElement:
    """One IO element as sent: id, declared size (0 = variable length), value bytes."""

    id: int
    size: int
    raw: bytes

    @property
    def value(self) -> int:
        """Fixed-size integer: unsigned up to 4 bytes, signed 8-byte (as Java's long)."""
        return int.from_bytes(self.raw, "big", signed=len(self.raw) == 8)

    @property
    def signed(self) -> int:
        return int.from_bytes(self.raw, "big", signed=True)


@dataclasses.dataclass(slots=True)
class RecordState:
    """What IO decoders may change besides attributes (the FMB speed element)."""

    attrs: dict[str, Any]
    speed_kmh: float | None = None


IoDecoder = Callable[[IoElement, RecordState], None]


def _named(key: str, convert: Callable[[IoElement], Any]) -> IoDecoder:
    def decode(element: IoElement, state: RecordState) -> None:
        state.attrs[key] = convert(element)
    return decode


def _as_bool(element: IoElement) -> bool:
    return element.value != 0


def _as_int(element: IoElement) -> int:
    return element.value


def _scaled(divisor: float, *, signed: bool = False) -> Callable[[IoElement], float]:
    def convert(element: IoElement) -> float:
        return (element.signed if signed else element.value) / divisor
    return convert


def _driver(element: IoElement, state: RecordState) -> None:
    """iButton (78): 8 bytes sent least significant first; zero means none."""
    if any(element.raw):
        state.attrs["driverUniqueId"] = element.raw[::-1].hex().upper()


_GREEN_DRIVING = {1: "hardAcceleration", 2: "hardBraking", 3: "hardCornering"}


def _green_driving(element: IoElement, state: RecordState) -> None:
    """Green driving type (253): 1 acceleration, 2 braking, 3 cornering."""
    alarm = _GREEN_DRIVING.get(element.value)
    if alarm:
        add_alarm(state.attrs, alarm)


def _panic(element: IoElement, state: RecordState) -> None:
    """Alarm (236): 1 = the alarm (panic) button or scenario fired."""
    if element.value:
        add_alarm(state.attrs, "sos")


def _crash(element: IoElement, state: RecordState) -> None:
    """FMB crash detection (247): any non-zero value is a crash (trace kinds 1..6)."""
    if element.value:
        add_alarm(state.attrs, "accident")


def _fmb_speed(element: IoElement, state: RecordState) -> None:
    """FMB speed element (24, km/h) replaces the GPS element's speed."""
    state.speed_kmh = float(element.value)


def _fmb_iccid(element: IoElement, state: RecordState) -> None:
    """FMB ICCID part 1 (11) is an 8-byte element; other sizes stay raw."""
    if len(element.raw) == 8:
        state.attrs["iccid"] = str(int.from_bytes(element.raw, "big"))
    else:
        state.attrs["io11"] = element.value


def _vin(element: IoElement, state: RecordState) -> None:
    """VIN (256) as a variable-length ASCII element; fixed-size 256 stays raw."""
    if element.size == 0:
        state.attrs["vin"] = element.raw.decode("latin-1")
    else:
        state.attrs["io256"] = element.value


def _beacons(element: IoElement, state: RecordState) -> None:
    """Beacon list (385, see the module docstring): data-part byte, then per beacon
    a flags byte (0x20 iBeacon, else Eddystone; 0x01 RSSI, 0x02 battery mV,
    0x04 temperature), the id (UUID/major/minor or namespace/instance) and the
    flagged values.  A truncated entry ends the list."""
    if element.size != 0:
        state.attrs["io385"] = element.value
        return
    r = Reader(element.raw, NAME)
    if not r.remaining():
        return
    r.u8()
    index = 0
    try:
        while r.remaining():
            flags = r.u8()
            index += 1
            _beacon(r, flags, f"beacon{index}", state.attrs)
    except ProtocolError:
        return


def _beacon(r: Reader, flags: int, prefix: str, attrs: dict[str, Any]) -> None:
    values: dict[str, Any] = {}
    if flags & 0x20:
        values[prefix + "Uuid"] = r.take(16).hex()
        values[prefix + "Major"] = r.u16()
        values[prefix + "Minor"] = r.u16()
    else:
        values[prefix + "Namespace"] = r.take(10).hex()
        values[prefix + "Instance"] = r.take(6).hex()
    if flags & 0x01:
        values[prefix + "Rssi"] = r.sint(1)
    if flags & 0x02:
        values[prefix + "Battery"] = r.u16()
    if flags & 0x04:
        values[prefix + "Temp"] = r.sint(2)
    attrs.update(values)


def _tag_value(kind: int, value: bytes) -> tuple[str, Any] | None:
    """One item of a BLE tag (observed): 0 RSSI, 1 id, 2 EYE flags + voltage code
    (2000 + 10 x code mV), 5 name, 6 temperature, 7 humidity, 13 low-battery flag,
    14 battery mV, 15 MAC.  Unknown kinds give None."""
    size = len(value)
    simple = {
        (0x00, 1): ("Rssi", lambda v: int.from_bytes(v, "big", signed=True)),
        (0x06, 2): ("Temp", lambda v: int.from_bytes(v, "big", signed=True)),
        (0x07, 1): ("Humidity", lambda v: v[0]),
        (0x0D, 1): ("LowBattery", lambda v: v[0]),
        (0x0E, 2): ("Battery", lambda v: int.from_bytes(v, "big")),
    }
    if (kind, size) in simple:
        suffix, convert = simple[(kind, size)]
        return suffix, convert(value)
    if kind == 0x01 and size:
        return "Id", value.hex()
    if kind == 0x0F and size:
        return "Mac", value.hex()
    if kind == 0x05:
        return "Name", value.decode("latin-1")
    if kind == 0x02 and size >= 2:
        return "Voltage", 2000 + 10 * value[1]
    return None


def _tags(element: IoElement, state: RecordState) -> None:
    """BLE tag lists (548, 10831, 11317; observed): a version byte, then per tag
    a length byte and items of kind (1), length (1), value; see `_tag_value`."""
    if element.size != 0:
        state.attrs[f"io{element.id}"] = element.value
        return
    data = element.raw[1:]
    index, pos = 0, 0
    while pos < len(data):
        size = data[pos]
        body = data[pos + 1:pos + 1 + size]
        pos += 1 + size
        index += 1
        item = 0
        while item + 2 <= len(body):
            kind, length = body[item], body[item + 1]
            value = body[item + 2:item + 2 + length]
            item += 2 + length
            if len(value) < length:
                break
            named = _tag_value(kind, value)
            if named is not None:
                state.attrs[f"tag{index}{named[0]}"] = named[1]


_COMMON_IO: dict[int, IoDecoder] = {
    1: _named("in1", _as_bool), 2: _named("in2", _as_bool),
    3: _named("in3", _as_bool), 4: _named("in4", _as_bool),
    16: _named("odometer", _as_int),
    17: _named("axisX", lambda e: e.signed), 18: _named("axisY", lambda e: e.signed),
    19: _named("axisZ", lambda e: e.signed),
    21: _named("rssi", _as_int),
    25: _named("bleTemp1", _scaled(100, signed=True)), 26: _named("bleTemp2", _scaled(100, signed=True)),
    27: _named("bleTemp3", _scaled(100, signed=True)), 28: _named("bleTemp4", _scaled(100, signed=True)),
    66: _named("power", _scaled(1000)),
    67: _named("battery", _scaled(1000)),
    78: _driver,
    179: _named("out1", _as_bool), 180: _named("out2", _as_bool),
    181: _named("pdop", _scaled(10)), 182: _named("hdop", _scaled(10)),
    199: _named("tripOdometer", _as_int),
    236: _panic,
    239: _named("ignition", _as_bool),
    240: _named("motion", _as_bool),
    241: _named("operator", _as_int),
    253: _green_driving,
    256: _vin,
    385: _beacons,
    548: _tags, 10831: _tags, 11317: _tags,
}
"""AVL IDs every Teltonika model shares (Traccar's names; units in the module docstring)."""

_FMB_IO: dict[int, IoDecoder] = {
    **_COMMON_IO,
    9: _named("adc1", _scaled(1000)),
    10: _named("adc2", _scaled(1000)),
    11: _fmb_iccid,
    24: _fmb_speed,
    247: _crash,
}
"""The FMB platform's table (modelOverride FMB*, FMC*, FMM* ...)."""


def _io_attributes(elements: list[IoElement], state: RecordState, options: Options) -> None:
    """IO elements -> attributes: the known ones by name, the rest as `io<N>`
    (integers; variable-length and 16-byte values as hex; empty ones dropped)."""
    table = _FMB_IO if options.fmb else _COMMON_IO
    for element in elements:
        decoder = table.get(element.id)
        if decoder is not None:
            decoder(element, state)
        elif element.size == 0 or element.size > 8:
            if element.raw:
                state.attrs[f"io{element.id}"] = element.raw.hex()
        else:
            state.attrs[f"io{element.id}"] = element.value


# --------------------------------------------------------------------------
# AVL records
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Field widths of one AVL codec's IO section."""

    event_width: int
    count_width: int
    id_width: int
    generation: bool = False     # Codec 16: generation type byte after the event id
    variable: bool = False       # Codec 8 Extended: variable-length group
    sizes: tuple[int, ...] = (1, 2, 4, 8)


LAYOUT_8 = Layout(1, 1, 1)
LAYOUT_8E = Layout(2, 2, 2, variable=True)
LAYOUT_16 = Layout(2, 1, 2, generation=True)
LAYOUT_8_SIXTEEN = Layout(1, 1, 1, sizes=(1, 2, 4, 8, 16))
"""Codec 8 as FMB firmware with the `extended` setting sends it: a 16-byte group."""


def _layout(codec: int, options: Options) -> Layout:
    if codec == CodecId.CODEC_8_EXTENDED:
        return LAYOUT_8E
    if codec == CodecId.CODEC_16:
        return LAYOUT_16
    return LAYOUT_8_SIXTEEN if options.extended else LAYOUT_8


def _io_elements(r: Reader, layout: Layout) -> tuple[int, list[IoElement]]:
    """Event IO id and the IO elements of one record."""
    event = r.uint(layout.event_width)
    if layout.generation:
        r.u8()
    r.uint(layout.count_width)     # total count: the groups' counts are authoritative
    elements = []
    for size in layout.sizes:
        count = r.count(r.uint(layout.count_width), layout.id_width + size, f"{size}-byte IO count")
        for _ in range(count):
            elements.append(IoElement(r.uint(layout.id_width), size, r.take(size)))
    if layout.variable:
        for _ in range(r.count(r.u16(), 4, "variable-length IO count")):
            ident = r.u16()
            elements.append(IoElement(ident, 0, r.take(r.u16())))
    return event, elements


def _avl_record(r: Reader, layout: Layout, options: Options) -> Position:
    """One Codec 8 / 8E / 16 record: time (ms), priority, GPS element, IO element.
    The fix is valid when satellites were in use (an invalid fix carries the last
    known coordinates with 0 satellites)."""
    time = _ms_time(r.uint(8))
    priority = r.u8()
    longitude, latitude = r.sint(4) / 1e7, r.sint(4) / 1e7
    speed_kmh: float
    altitude, course, satellites, speed_kmh = r.sint(2), r.u16(), r.u8(), r.u16()
    event, elements = _io_elements(r, layout)
    state = RecordState({"priority": priority, "sat": satellites, "event": event})
    _io_attributes(elements, state, options)
    if state.speed_kmh is not None:
        speed_kmh = state.speed_kmh
    return Position(fix_time=time, device_time=time, valid=satellites != 0,
                    latitude=latitude, longitude=longitude, altitude_m=float(altitude),
                    speed_kn=speed_kmh / KMH_PER_KNOT, course_deg=float(course),
                    attributes=state.attrs)


def _gh_record(r: Reader, options: Options) -> Position:
    """One Codec 7 (GH3000) record: time word (2 bits priority, 30 bits seconds
    since 2007-01-01), global mask (GPS, 1/2/4-byte IO groups), GPS mask (float
    lat/lon, altitude, angle x 360/256, speed km/h, satellites, LAC + cell,
    signal quality, operator)."""
    word = r.u32()
    time = _GH_EPOCH + dt.timedelta(seconds=word & 0x3FFFFFFF)
    mask = r.u8()
    attrs: dict[str, Any] = {}
    fix = _gh_gps(r, attrs) if mask & 0x01 else None
    elements = []
    for bit, size in ((0x02, 1), (0x04, 2), (0x08, 4)):
        if mask & bit:
            for _ in range(r.count(r.u8(), 1 + size, f"{size}-byte IO count")):
                elements.append(IoElement(r.u8(), size, r.take(size)))
    state = RecordState(attrs)
    _io_attributes(elements, state, options)
    if fix is None or fix["latitude"] is None:
        return Position(fix_time=time, device_time=time, valid=False, latitude=0.0, longitude=0.0,
                        outdated=True, attributes=attrs)
    return Position(fix_time=time, device_time=time, valid=attrs.get("sat", 1) != 0,
                    latitude=fix["latitude"], longitude=fix["longitude"],
                    altitude_m=fix["altitude"], speed_kn=fix["speed"] / KMH_PER_KNOT,
                    course_deg=fix["course"], attributes=attrs, network=fix["network"])


def _gh_gps(r: Reader, attrs: dict[str, Any]) -> dict[str, Any]:
    mask = r.u8()
    fix: dict[str, Any] = {"latitude": None, "longitude": None, "altitude": 0.0, "course": 0.0,
                           "speed": 0.0, "network": None}
    if mask & 0x01:
        latitude, longitude = struct.unpack(">ff", r.take(8))
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ProtocolError(f"teltonika: GH3000 coordinates {latitude},{longitude} out of range")
        fix["latitude"], fix["longitude"] = latitude, longitude
    if mask & 0x02:
        fix["altitude"] = float(r.sint(2))
    if mask & 0x04:
        fix["course"] = r.u8() * 360 / 256
    if mask & 0x08:
        fix["speed"] = float(r.u8())
    if mask & 0x10:
        attrs["sat"] = r.u8()
    cell = (r.u16(), r.u16()) if mask & 0x20 else None
    if mask & 0x40:
        attrs["rssi"] = r.u8()
    if mask & 0x80:
        attrs["operator"] = r.u32()
    if cell is not None:
        operator = attrs.get("operator", 0)
        fix["network"] = network([cell_tower(operator // 100, operator % 100, cell[0], cell[1])])
    return fix


def _avl_records(r: Reader, codec: int, options: Options) -> list[Position]:
    """The records after the codec id: count, records, count.  Strict sessions
    need both counts equal and nothing left over; lenient ones keep the records
    decoded before the bytes ran out."""
    count = r.u8()
    positions: list[Position] = []
    layout = _layout(codec, options)
    try:
        for _ in range(count):
            if codec == CodecId.GH3000:
                positions.append(_gh_record(r, options))
            else:
                positions.append(_avl_record(r, layout, options))
        trailer = r.u8()
    except ProtocolError:
        if options.lenient:
            return positions
        raise
    if not options.lenient and (trailer != count or r.remaining()):
        raise ProtocolError(f"teltonika: record counts {count}/{trailer} with "
                            f"{r.remaining()} bytes left over", r.data[:64])
    return positions


# --------------------------------------------------------------------------
# Codec 12 / 13 / 14 messages
# --------------------------------------------------------------------------

_AXLE_KEYS = tuple(f"axle{i}" for i in range(1, 9)) + (
    "loadTruck", "loadTrailer", "totalTruck", "totalTrailer")


def _axle_loads(text: str) -> dict[str, float] | None:
    """Axle-scale report passed through the serial port (observed):
    "UUUUww" + 12 tonnages separated by ";" + ";SSS" - axles 1..8, load of truck
    and trailer, total of truck and trailer."""
    if not (text.startswith("UUUUww") and text.endswith("SSS")):
        return None
    fields = text[6:-3].rstrip(";").split(";")
    if len(fields) != len(_AXLE_KEYS):
        return None
    try:
        return {key: float(value) for key, value in zip(_AXLE_KEYS, fields, strict=True)}
    except ValueError:
        return None


def _response_messages(kind: int, payload: bytes, now: dt.datetime,
                       device_time: dt.datetime | None = None) -> list[Message]:
    """A device's answer: CommandResult(text) and the status record Traccar makes
    of it ({"type": message type, "result": text}; binary answers as hex; an
    axle-scale report as its tonnages instead)."""
    if _printable(payload):
        text = payload.decode("ascii").rstrip("\r\n")
        loads = _axle_loads(text)
        if loads is not None:
            return [_status(now, {"type": kind, **loads}, device_time)]
    else:
        text = payload.hex()
    return [CommandResult(text), _status(now, {"type": kind, "result": text}, device_time)]


def _status(now: dt.datetime, attrs: dict[str, Any], device_time: dt.datetime | None) -> Position:
    return Position(fix_time=now, device_time=device_time, valid=True, latitude=0.0, longitude=0.0,
                    outdated=True, attributes=attrs)


def _command_messages(r: Reader, codec: int, options: Options, now: dt.datetime) -> list[Message]:
    """Codec 12 / 13 / 14 body after the codec id: quantity, then per message
    type (1), size (4), payload; then the quantity again."""
    messages: list[Message] = []
    count = r.u8()
    for _ in range(r.count(count, 5, "command quantity")):
        kind = r.u8()
        payload = r.take(r.count(r.u32(), 1, "command size"))
        messages += _command_message(codec, kind, payload, now)
    if not options.lenient and (r.u8() != count or r.remaining()):
        raise ProtocolError("teltonika: command quantities differ or bytes left over", r.data[:64])
    return messages


def _command_message(codec: int, kind: int, payload: bytes, now: dt.datetime) -> list[Message]:
    if codec == CodecId.CODEC_12:
        return _response_messages(kind, payload, now) if kind == MessageType.RESPONSE else []
    if codec == CodecId.CODEC_13:
        if len(payload) < 4:
            return []
        sent = dt.datetime.fromtimestamp(int.from_bytes(payload[:4], "big"), dt.UTC)
        return _response_messages(kind, payload[4:], now, sent)
    if kind == MessageType.RESPONSE and len(payload) >= 8:   # Codec 14: IMEI (8, BCD) + text
        return _response_messages(kind, payload[8:], now)
    return []


# --------------------------------------------------------------------------
# Replies and commands
# --------------------------------------------------------------------------

def avl_ack(count: int) -> bytes:
    """TCP acknowledgement: the number of records accepted, 4 bytes."""
    return count.to_bytes(4, "big")


def udp_ack(packet_id: int, avl_packet_id: int, count: int) -> bytes:
    """UDP acknowledgement: 00 05 | packet id | 01 | AVL packet id | count."""
    return (b"\x00\x05" + packet_id.to_bytes(2, "big") + b"\x01"
            + bytes([avl_packet_id & 0xFF, count & 0xFF]))


def tcp_packet(data: bytes) -> bytes:
    """Wrap `data` (codec id .. final count) in preamble, length and CRC."""
    return PREAMBLE + len(data).to_bytes(4, "big") + data + crc16_ibm(data).to_bytes(4, "big")


def command_frame(text: str) -> bytes:
    """Codec 12 command (type 0x05) carrying `text`, for TCP."""
    payload = text.encode("latin-1")
    data = (bytes([CodecId.CODEC_12, 1, MessageType.COMMAND]) + len(payload).to_bytes(4, "big")
            + payload + b"\x01")
    return tcp_packet(data)


COMMAND_TEXTS = {   # FMB/FMC/FMM SMS/GPRS command set
    "engineStop": "setdigout 1",      # DOUT1 on (immobiliser relay)
    "engineResume": "setdigout 0",    # DOUT1 off
    "rebootDevice": "cpureset",
    "positionSingle": "getgps",
}


def command_text(command: Command) -> str:
    """The Teltonika text for a Traccar command type."""
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not data.isascii() or len(data) > MAX_FRAME_BYTES - 32:
            raise UnsupportedCommand("teltonika: custom command needs ASCII text in attributes.data")
        return data
    try:
        return COMMAND_TEXTS[command.type]
    except KeyError:
        raise UnsupportedCommand(f"teltonika: unsupported command type {command.type!r}") from None


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class UdpHeader:
    """The UDP channel header and the IMEI that follows it."""

    packet_id: int
    avl_packet_id: int
    imei: str


def parse_udp(datagram: bytes, *, lenient: bool = False) -> tuple[UdpHeader, bytes]:
    """Split a UDP datagram into its header and the AVL data (codec id onwards)."""
    r = Reader(datagram, NAME)
    length = r.u16()
    if not lenient and length != len(datagram) - 2:
        raise ProtocolError(f"teltonika: UDP length {length} for a {len(datagram)}-byte datagram",
                            datagram[:64])
    packet_id = r.u16()
    r.u8()                                   # "not usable byte", 0x01
    avl_packet_id = r.u8()
    imei = r.take(r.u16())
    if not imei or len(imei) > MAX_IMEI_DIGITS or not _is_digits(imei):
        raise ProtocolError("teltonika: UDP packet without a numeric IMEI", datagram[:64])
    return UdpHeader(packet_id, avl_packet_id, imei.decode("ascii")), r.rest()


def _is_hello(frame: bytes) -> bool:
    return (3 <= len(frame) <= MAX_IMEI_DIGITS + 2 and frame[0] == 0
            and frame[1] == len(frame) - 2 and _is_digits(frame[2:]))


class TeltonikaSession(StreamSession):
    """One connection's decoder: framer, IMEI from the hello (TCP) or the
    datagram header (UDP), dialect options (see StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer(lenient=self.options.lenient)

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """UDP: one datagram holds one AVL (or Codec 12) packet with its header."""
        # not framing.decode_datagram: a datagram is one UDP packet, not a run of TCP frames
        check_frame_size(NAME, data, MAX_FRAME_BYTES)
        return [self._decode_udp(bytes(data), now)]

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one frame: a ping, an IMEI hello, a TCP packet or a UDP datagram
        (told apart by their first bytes)."""
        if frame == PING:
            return Frame(messages=(), raw=frame)
        if frame[:4] == PREAMBLE and len(frame) >= 8:
            return self._decode_tcp(frame, now)
        if _is_hello(frame):
            self.unique_id = frame[2:].decode("ascii")
            return Frame(messages=(Login(self.unique_id),), reply=ACCEPT, raw=frame)
        return self._decode_udp(frame, now)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """A Codec 12 command packet with the command's text (see COMMAND_TEXTS)."""
        return command_frame(command_text(command))

    def _decode_tcp(self, frame: bytes, now: dt.datetime) -> Frame:
        declared = int.from_bytes(frame[4:8], "big")
        if self.options.lenient:
            data = frame[8:]
        else:
            if len(frame) != declared + 12 or declared < 3:
                raise ProtocolError(f"teltonika: data length {declared} does not match a "
                                    f"{len(frame)}-byte packet", frame[:64])
            if not crc_ok(frame):
                raise ProtocolError("teltonika: bad CRC", frame[:64])
            data = frame[8:-4]
        messages, count = self._decode_data(data, now, None)
        reply = avl_ack(count) if count is not None else b""
        return Frame(messages=tuple(messages), reply=reply, raw=frame)

    def _decode_udp(self, datagram: bytes, now: dt.datetime) -> Frame:
        header, data = parse_udp(datagram, lenient=self.options.lenient)
        self.unique_id = header.imei
        messages, count = self._decode_data(data, now, header.imei)
        reply = udp_ack(header.packet_id, header.avl_packet_id, count) if count is not None else b""
        return Frame(messages=tuple(messages), reply=reply, raw=datagram)

    def _decode_data(self, data: bytes, now: dt.datetime,
                     unique_id: str | None) -> tuple[list[Message], int | None]:
        """Messages of the data (codec id onwards) and the record count to
        acknowledge (None: the packet gets no acknowledgement)."""
        r = Reader(data, NAME)
        codec = r.u8()
        if codec in AVL_CODECS:
            positions = _avl_records(r, codec, self.options)
            if unique_id is not None:
                positions = [dataclasses.replace(p, unique_id=unique_id) for p in positions]
            return list(positions), len(positions)
        if codec in (CodecId.CODEC_12, CodecId.CODEC_13, CodecId.CODEC_14):
            messages = _command_messages(r, codec, self.options, now)
            if unique_id is not None:
                messages = [dataclasses.replace(m, unique_id=unique_id) for m in messages]
            return messages, None
        return [], None


CODEC = CodecSpec(name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
                  command_types=frozenset({*COMMAND_TEXTS, "custom"}),
                  session_factory=TeltonikaSession)


__all__ = [
    "ACCEPT", "AVL_CODECS", "CODEC", "COMMAND_TEXTS", "DEFAULT_LISTEN", "MAX_FRAME_BYTES",
    "NAME", "PING", "CodecId", "Framer", "IoElement", "MessageType", "Options",
    "TeltonikaSession", "UdpHeader", "avl_ack", "command_frame", "command_text", "crc16_ibm",
    "parse_udp", "tcp_packet", "udp_ack"
]
