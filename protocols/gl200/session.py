"""The GL200 session (framer + decoders + replies), the codec and the commands.

Replies (Frame.reply, sent by the server once the frame is stored):

- "+ACK:GTHBD,<version>,...,<count>$" (heartbeat) -> "+SACK:GTHBD,<version>,<count>$"
  always (the device reconnects when its heartbeat is not answered);
- every other text frame ("+RESP:", "+BUFF:", other "+ACK:") and binary
  "+RSP"/"+BSP"/"+EVT"/"+BVT"/"+INF"/"+BNF" report -> "+SACK:<count>$" with the
  frame's count number (4 hex digits), when the session option "ack" is on
  (the default: it is what a device in SACK mode waits for before dropping
  the report from its buffer, and a device not in SACK mode ignores it).
  Option "ack": False sends nothing for them.

Commands (`encode_command`; `<pw>` is the session option "password",
default "gl200", `<sn>` the command id mod 65536 as 4 upper-case hex digits):

- engineStop      "AT+GTOUT=<pw>,1,,,0,0,0,0,0,0,,,,,,,,<sn>$"  (digital output 1 on)
- engineResume    "AT+GTOUT=<pw>,0,,,0,0,0,0,0,0,,,,,,,,<sn>$"  (digital output 1 off)
- rebootDevice    "AT+GTRTO=<pw>,3,,,,,,<sn>$"                   (sub command 3: REBOOT)
- positionSingle  "AT+GTRTO=<pw>,1,,,,,,<sn>$"                   (sub command 1: RTL)
- positionPeriodic "AT+GTFRI=<pw>,1,,,,,,,<frequency s>,,,,,,,,,,,,<sn>$"
  (mode 1, fixed-time reports every `frequency` seconds; empty fields keep
  the device's settings)
- custom          attributes["data"] as given (ASCII)

The GTOUT layout is the GV300 one (output 1 status, duration, toggle
times, outputs 2 and 3, then reserved fields); GTRTO and GTFRI follow the
GL300 / GV300 documents.  The device answers with "+ACK:GTOUT|GTRTO|GTFRI,
...", decoded as a CommandResult.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from protocols.base import CodecSpec, Command, Frame, Message, ProtocolError, UnsupportedCommand
from protocols.gl200 import binary
from protocols.gl200.common import TextMessage, parse_text
from protocols.gl200.framing import MAX_FRAME_BYTES, Framer, classify
from protocols.gl200.text import decode_text
from protocols.session import StreamSession
from protocols.values import option_flag

NAME = "gl200"
DEFAULT_LISTEN = ("tcp:5004", "udp:5004")
DEFAULT_PASSWORD = "gl200"

_COUNT = re.compile(r"[0-9A-Fa-f]{4}")
_PASSWORD = re.compile(r"[0-9A-Za-z_#*@.-]{1,16}")


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Session settings: `password` (command password, default "gl200") and
    `ack` (send "+SACK:<count>$" for reports, default True)."""

    password: str = DEFAULT_PASSWORD
    ack: bool = True

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        options = options or {}
        password = str(options.get("password") or DEFAULT_PASSWORD)
        if not _PASSWORD.fullmatch(password):
            raise ValueError(f"gl200: unusable command password {password!r}")
        ack = options.get("ack")
        return cls(password=password, ack=True if ack is None else option_flag(ack))


def sack(count: str) -> bytes:
    """The server acknowledgement of one report."""
    return f"+SACK:{count.upper()}$".encode("ascii")


def heartbeat_sack(version: str, count: str) -> bytes:
    """The answer to a GTHBD heartbeat."""
    return f"+SACK:GTHBD,{version},{count.upper()}$".encode("ascii")


def text_reply(msg: TextMessage, *, ack: bool) -> bytes:
    """What the device expects back for a text frame (see the module docstring)."""
    if not _COUNT.fullmatch(msg.count):
        return b""
    if msg.kind == "ACK" and msg.type == "HBD":
        return heartbeat_sack(msg.version, msg.count) if msg.version else b""
    return sack(msg.count) if ack else b""


class Gl200Session(StreamSession):
    """One connection (or one UDP peer): framer, device id, options.

    After `receive_data` raised ProtocolError the offending frame is gone;
    call `receive_data(b"", now)` to continue with the bytes after it.  When a
    bad frame follows good ones in the same call, the good frames are
    returned and the error is raised by the next call."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer()

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """UDP: one datagram of whole frames (the last text frame may lack its "$")."""
        # not framing.decode_datagram: a trailing text frame without "$" is flushed, not an error
        framer = self.new_framer(datagram=True)
        framer.feed(data)
        frames = [self.decode_frame(raw, now) for raw in framer.frames()]
        if framer.buffered:
            last = framer.flush()
            if last is None:
                raise ProtocolError("gl200: datagram ends inside a frame", data[:64])
            frames.append(self.decode_frame(last, now))
        return frames

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one whole frame (text with or without its "$", or binary)."""
        kind = classify(frame) if frame[:1] == b"+" else "garbage"
        messages: Sequence[Message]
        if kind == "text":
            msg = parse_text(frame)
            messages = decode_text(msg, now)
            reply = text_reply(msg, ack=self.options.ack)
            unique_id = msg.unique_id
        elif kind == "binary":
            decoded = binary.decode_binary(frame, now, self.unique_id)
            messages, unique_id = decoded.messages, decoded.unique_id
            reply = sack(decoded.count) if self.options.ack and decoded.count else b""
        else:
            raise ProtocolError("gl200: not an @Track frame", frame[:64])
        if unique_id:
            self.unique_id = unique_id
        return Frame(messages=tuple(messages), reply=reply, raw=frame)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        return encode_command(command, self.options.password)


def _serial(command: Command) -> str:
    return f"{command.id & 0xFFFF:04X}"


def encode_command(command: Command, password: str = DEFAULT_PASSWORD) -> bytes:
    """The @Track command carrying `command` (see the module docstring)."""
    serial = _serial(command)
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not data.isascii() or not data.isprintable():
            raise UnsupportedCommand("gl200: custom command needs printable ASCII in attributes.data")
        return data.encode("ascii")
    if command.type == "positionPeriodic":
        try:
            frequency_s = int(command.attributes.get("frequency", 0))
        except (TypeError, ValueError):
            frequency_s = 0
        if not 1 <= frequency_s <= 86400:
            raise UnsupportedCommand("gl200: positionPeriodic frequency must be 1..86400 s")
        body = ["1", "", "", "", "", "", "", str(frequency_s)] + [""] * 11
        return f"AT+GTFRI={password},{','.join(body)},{serial}$".encode("ascii")
    template = COMMAND_TEMPLATES.get(command.type)
    if template is None:
        raise UnsupportedCommand(f"gl200: unsupported command type {command.type!r}")
    return template.format(password=password, serial=serial).encode("ascii")


COMMAND_TEMPLATES = {
    "engineStop": "AT+GTOUT={password},1,,,0,0,0,0,0,0,,,,,,,,{serial}$",
    "engineResume": "AT+GTOUT={password},0,,,0,0,0,0,0,0,,,,,,,,{serial}$",
    "rebootDevice": "AT+GTRTO={password},3,,,,,,{serial}$",
    "positionSingle": "AT+GTRTO={password},1,,,,,,{serial}$",
}


CODEC = CodecSpec(
    name=NAME,
    default_listen=DEFAULT_LISTEN,
    max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({*COMMAND_TEMPLATES, "positionPeriodic", "custom"}),
    session_factory=Gl200Session,
)
"""The GL200 (Queclink @Track) codec as the registry sees it."""

__all__ = ["CODEC", "COMMAND_TEMPLATES", "DEFAULT_LISTEN", "DEFAULT_PASSWORD", "NAME",
           "Gl200Session", "Options", "encode_command", "heartbeat_sack", "sack", "text_reply"]
