"""The shared session base and decoder table, through a toy line protocol."""

import datetime as dt

import pytest

from protocols import Command, Frame, Login, ProtocolError, UnsupportedCommand
from protocols.framing import StreamFramer
from protocols.registry import CODECS
from protocols.session import DecoderTable, StreamSession

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


class LineFramer(StreamFramer):
    name = "toy"

    def _next_frame(self) -> bytes | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > self.max_frame_bytes:
                self._reject("line too long", drop=len(self._buffer))
            return None
        frame = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return frame


class ToySession(StreamSession):
    """"ID <id>" logs in, "BAD" is a ProtocolError, anything else is ignored."""

    name = "toy"
    max_frame_bytes = 16

    def __init__(self) -> None:
        self.framers: list[bool] = []
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> LineFramer:
        self.framers.append(datagram)
        return LineFramer(self.max_frame_bytes)

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        if frame == b"BAD":
            raise ProtocolError("toy: bad", frame)
        if frame.startswith(b"ID "):
            self.identify(frame[3:].decode())
            return Frame(messages=(Login(frame[3:].decode()),), reply=b"OK\n", raw=frame)
        return Frame(messages=(), raw=frame)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        return f"{self.require_unique_id()} {command.type}\n".encode()


def test_stream_frames_are_decoded_in_order_and_a_partial_one_waits():
    session = ToySession()
    frames = session.receive_data(b"ID 42\nHELLO\nID 4", NOW)
    assert [f.raw for f in frames] == [b"ID 42", b"HELLO"]
    assert session.unique_id == "42"
    assert [f.raw for f in session.receive_data(b"3\n", NOW)] == [b"ID 43"]
    assert session.unique_id == "43"


def test_a_bad_frame_after_good_ones_is_raised_by_the_next_call():
    session = ToySession()
    frames = session.receive_data(b"ID 1\nBAD\nID 2\n", NOW)
    assert [f.raw for f in frames] == [b"ID 1"]
    with pytest.raises(ProtocolError, match="toy: bad"):
        session.receive_data(b"", NOW)
    assert [f.raw for f in session.receive_data(b"", NOW)] == [b"ID 2"]


def test_a_datagram_uses_a_fresh_datagram_framer_and_refuses_a_partial_frame():
    session = ToySession()
    session.receive_data(b"ID 1", NOW)   # a partial frame in the stream stays there
    assert [f.raw for f in session.receive_datagram(b"ID 2\n", NOW)] == [b"ID 2"]
    assert session.framers == [False, True]
    with pytest.raises(ProtocolError, match="datagram ends inside a frame"):
        session.receive_datagram(b"ID 3\nID", NOW)
    assert [f.raw for f in session.receive_data(b"\n", NOW)] == [b"ID 1"]


def test_decode_frame_refuses_a_frame_over_the_cap():
    with pytest.raises(ProtocolError, match="toy: frame of 17 bytes exceeds 16"):
        ToySession().decode_frame(b"x" * 17, NOW)
    assert ToySession().decode_frame(bytearray(b"ID 7"), NOW).raw == b"ID 7"


def test_closing_datagram_supplies_the_missing_terminator_of_the_last_frame():
    session = ToySession()
    frames = session._decode_datagram_closing(b"ID 1\nID 2", NOW, b"\n")
    assert [f.raw for f in frames] == [b"ID 1", b"ID 2"]
    assert [f.raw for f in session._decode_datagram_closing(b"ID 1\n  ", NOW, b"\n")] == [b"ID 1"]


def test_identify_keeps_the_last_id_when_a_frame_names_none():
    session = ToySession()
    session.identify("a")
    session.identify("")
    session.identify(None)
    assert session.unique_id == "a"


def test_commands_need_the_device_id():
    session = ToySession()
    with pytest.raises(UnsupportedCommand, match="toy: the device has not identified itself yet"):
        session.encode_command(Command("rebootDevice"), NOW)
    session.receive_data(b"ID 9\n", NOW)
    assert session.encode_command(Command("rebootDevice"), NOW) == b"9 rebootDevice\n"


def test_the_base_refuses_commands_by_default():
    class Mute(ToySession):
        encode_command = StreamSession.encode_command

    with pytest.raises(UnsupportedCommand, match="toy: the protocol takes no commands"):
        Mute().encode_command(Command("custom"), NOW)


def test_decoder_table_dispatches_and_refuses_a_second_decoder_for_a_type():
    table: DecoderTable[int, object] = DecoderTable("toy")

    @table.register(1, 2)
    def first() -> str:
        return "first"

    assert table.get(1) is first and table.get(2) is first and table.get(3) is None
    assert 1 in table and 3 not in table and sorted(table) == [1, 2] and len(table) == 2
    with pytest.raises(ValueError, match="toy: 2 already has a decoder"):
        table.register(2)(lambda: "second")
    assert table.get(2) is first


@pytest.mark.parametrize("name", sorted(set(CODECS) - {"osmand"}))
def test_every_stream_protocol_session_is_a_stream_session(name):
    """osmand is carried in HTTP requests; every other protocol shares the base."""
    session = CODECS[name].new_session()
    assert isinstance(session, StreamSession)
    assert session.name == name
    assert session.max_frame_bytes == CODECS[name].max_frame_bytes
