"""Every decoder, any input: a result or ProtocolError, never another exception,
never a hang, never an allocation sized by a count read from the frame.

The properties feed each protocol through every entry point of
`tests/protocols/fuzzing.py` (decode_frame, the stream whole and in chunks,
datagrams, replay; osmand: HTTP requests), chosen with the input's first byte:
random bytes, and valid frames (device side and test-module frames, not the
../shared corpus, so that the run does not depend on it) mutated by
`fuzzing.mutate`.  Each input runs under a CPU-time watchdog (`fuzzing.watchdog`,
`CPU_BOUND_S`), so a hang fails the test with `Hang` instead of stalling it.
Derandomized, without an example database: the same examples on every run.

Then one regression test per concrete finding (see docs/fuzzing.md); each
failed, or hung, on the decoders before the fix.  `benchmarks/fuzz.py` is the
long-running companion (atheris), not a test.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import (
    CODECS,
    Command,
    Frame,
    HttpRequest,
    ProtocolError,
    gl200,
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
)
from protocols.binary import Reader
from tests.protocols.fuzzing import (
    ENTRIES,
    decode_input,
    http_request,
    is_http,
    mutate,
    protocol_names,
    run_input,
    seed_inputs,
    watchdog,
)
from tests.protocols.test_jt808 import HEARTBEAT as JT808_HEARTBEAT
from tests.protocols.test_jt808 import REGISTER as JT808_REGISTER
from tests.protocols.test_jt808 import header as jt808_header
from tests.protocols.test_jt808 import message as jt808_message
from tests.protocols.test_jt808 import wire as jt808_wire
from tests.protocols.test_meitrack import _framed_bytes as meitrack_framed
from tests.protocols.test_meitrack import framed as meitrack_text
from tests.protocols.test_meitrack import packet as cce_packet
from tests.protocols.test_suntech import SA200_STT, UEX_FUEL_SENSORS
from tests.protocols.test_teltonika import _record8
from tests.protocols.test_teltonika import packet as teltonika_packet

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PROTOCOLS = protocol_names()
CPU_BOUND_S = 1.0
"""CPU time one input may take (a decoder needs milliseconds; 1 s is a hang)."""
MEMORY_BOUND_BYTES = 1 << 20
"""Peak allocation allowed for one small frame that claims a huge count."""

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def bounded(call):
    """`call()` under the CPU watchdog: its result, or the ProtocolError it raised.
    Any other exception (Hang included) propagates and fails the test."""
    try:
        return watchdog(CPU_BOUND_S, call)
    except ProtocolError as error:
        return error


def decode(codec, frame: bytes, **options) -> Frame | ProtocolError:
    return bounded(lambda: codec.CODEC.new_session(options).decode_frame(frame, NOW))


def refused(codec, frame: bytes, **options) -> ProtocolError:
    """The ProtocolError decoding `frame` gives, within the CPU and memory bounds."""
    tracemalloc.start()
    try:
        outcome = decode(codec, frame, **options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, ProtocolError), outcome
    assert peak < MEMORY_BOUND_BYTES
    return outcome


def feed(codec, data: bytes, chunk: int, **options) -> list[Frame]:
    """`data` through one session's receive_data in `chunk`-byte pieces (going
    on after each ProtocolError, as the sessions allow), under the watchdog."""
    session = codec.CODEC.new_session(options)
    frames: list[Frame] = []

    def run() -> None:
        pieces = [data[at:at + chunk] for at in range(0, len(data), chunk)]
        for piece in pieces + [b""] * 8:        # then drain: an error may hold frames back
            try:
                frames.extend(session.receive_data(piece, NOW))
            except ProtocolError:
                continue
    watchdog(CPU_BOUND_S, run)
    return frames


# -- properties: random and mutated input, every entry point ----------------------------

@pytest.mark.parametrize("name", PROTOCOLS)
def test_seeds_hold_valid_frames_of_every_protocol(name):
    """The mutations start from frames that reach the decoders: at least five
    seeds decode to messages on decode_frame."""
    decoded = 0
    for data in seed_inputs(name, corpus=False)[::2]:      # the decode_frame inputs
        case = decode_input(name, data)
        frame = http_request(case) if is_http(name) else case.payload
        try:
            decoded += bool(CODECS[name].new_session(case.options).decode_frame(frame, NOW).messages)
        except ProtocolError:
            continue
    assert decoded >= 5


@pytest.mark.parametrize("name", PROTOCOLS)
@PROPERTY
@given(data=st.binary(max_size=1024))
def test_random_input_gives_a_result_or_protocol_error(name, data):
    """Random bytes (first byte: entry point and options) on a new session."""
    start = time.process_time()
    bounded(lambda: run_input(name, data, NOW))
    assert time.process_time() - start < CPU_BOUND_S


@pytest.mark.parametrize("name", PROTOCOLS)
@PROPERTY
@given(data=st.data())
def test_mutated_frames_give_a_result_or_protocol_error(name, data):
    """A valid frame of the protocol with 1-4 mutations (big numbers in text
    fields, 0xFF.. in binary ones, repeated slices ...) on any entry point."""
    seed = data.draw(st.sampled_from(seed_inputs(name, corpus=False)), label="seed")
    selector = data.draw(st.integers(0, 255), label="selector")
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    payload = mutate(rng, seed[1:], limit=8192)
    start = time.process_time()
    bounded(lambda: run_input(name, bytes([selector]) + payload, NOW))
    assert time.process_time() - start < CPU_BOUND_S


def test_the_watchdog_turns_a_hang_into_a_failure():
    """Without this the properties above could not fail on a hang."""
    from tests.protocols.fuzzing import Hang

    def spin() -> None:
        while True:
            pass
    with pytest.raises(Hang):
        watchdog(0.05, spin)


# -- count-bounded binary fields ----------------------------------------------------------

def test_reader_count_checks_a_count_against_the_bytes_left():
    r = Reader(b"\x00" * 10, "x", pos=2)
    assert r.count(4, 2, "cells") == 4
    with pytest.raises(ProtocolError, match=r"x: cells 65535 needs 131070 bytes, 8 left at offset 2"):
        r.count(0xFFFF, 2, "cells")
    with pytest.raises(ProtocolError, match="cells -1"):
        r.count(-1, 2, "cells")


def _cce(count: int, *packets: bytes) -> bytes:
    data = b"\x00" * 4 + count.to_bytes(2, "little")
    data += b"".join(len(p).to_bytes(2, "little") + p for p in packets)
    return meitrack_framed(b"CCE," + data)


def test_meitrack_cce_packet_count_beyond_the_frame_is_refused_before_the_loop():
    one = cce_packet(b"\x07\x10", counts=(1, 0, 0, 0))
    assert "CCE packet count 65535 needs" in str(refused(meitrack, _cce(0xFFFF, one)))
    params = _cce(1, cce_packet(counts=(255, 0, 0, 0)))
    assert "1-byte parameter count 255 needs" in str(refused(meitrack, params))


def test_teltonika_io_and_command_counts_beyond_the_frame_are_refused():
    record = _record8({})[:-4]                       # head, event, total count: groups follow
    io = teltonika_packet(b"\x08\x01" + record + b"\xff" + b"\x00" * 3 + b"\x01")
    assert "1-byte IO count 255 needs 510 bytes" in str(refused(teltonika, io))
    size = teltonika_packet(bytes([0x0C, 1, 6]) + b"\xff\xff\xff\xff" + b"abc" + b"\x01")
    assert "command size 4294967295 needs" in str(refused(teltonika, size))
    quantity = teltonika_packet(bytes([0x0C, 0xFF, 6]) + b"\x00\x00\x00\x03" + b"abc" + b"\xff")
    assert "command quantity 255 needs" in str(refused(teltonika, quantity))


GT06_LEGACY = bytes.fromhex("7878006919012105090303028f01007549e05a00bc9c5c5a007a8d1a5a0d0a")
"""0x69 legacy cell report (lenient framing): no Wi-Fi, 3 cells."""


def test_gt06_legacy_cell_and_wifi_counts_beyond_the_frame_are_refused():
    assert len(decode(gt06, GT06_LEGACY, lenient=True).messages[0].network["cellTowers"]) == 3
    cells = GT06_LEGACY.replace(bytes.fromhex("090303028f"), bytes.fromhex("0903ff028f"))
    assert "cell count 255 needs 1275 bytes" in str(refused(gt06, cells, lenient=True))
    wifi = b"\x78\x78\xff" + GT06_LEGACY[3:]          # the length byte is the Wi-Fi count
    assert "Wi-Fi count (length field) 255 needs" in str(refused(gt06, wifi, lenient=True))


def _jt808_obd(kind: int, content: bytes) -> bytes:
    """0x0900 transparent OBD (0xF0): time, archive, ?, data type, content, place."""
    return jt808_message(0x0900, bytes.fromhex("f0260601120000" "0000") + bytes([kind]) + content + bytes(12))


def test_jt808_obd_counts_beyond_the_frame_are_refused():
    groups = _jt808_obd(2, b"\xff\xff" + bytes(6))
    assert "trouble code group count 65535 needs" in str(refused(jt808, groups))
    codes = _jt808_obd(2, b"\x00\x01" + bytes(4) + b"\xff\xff" + bytes(8))
    assert "trouble code count 65535 needs" in str(refused(jt808, codes))
    stream = _jt808_obd(1, b"\xff" + bytes.fromhex("052c0400000001"))
    assert "OBD data stream count 255 needs" in str(refused(jt808, stream))


def test_jt808_obd_value_wider_than_any_reading_is_skipped():
    """A 255-byte value times a float factor overflowed (OverflowError)."""
    wide = decode(jt808, _jt808_obd(1, b"\x01" + b"\x05\x2c\xff" + b"\xff" * 255))
    assert isinstance(wide, Frame) and "fuelUsed" not in wide.messages[0].attributes
    narrow = decode(jt808, _jt808_obd(1, b"\x01" + b"\x05\x2c\x02" + b"\x01\x00"))
    assert narrow.messages[0].attributes["fuelUsed"] == 2.56


def test_jt808_obd_text_skips_numbers_a_float_cannot_hold():
    attrs = jt808.obd_text(b"$OBD-RT,12.5,800,0,0,0,inf,0,nan,1" + b"9" * 400)
    assert attrs["power"] == 12.5 and "coolantTemp" not in attrs and "fuelConsumption" not in attrs


# -- watch: counts of cells and access points ---------------------------------------------

WATCH_UD = "UD,010120,025946,A,22.5,N,114.0,E,0,0,0,5,100,80,0,0,00000000,"


def test_watch_frame_claiming_a_billion_cells_is_refused_at_once():
    """It looped 10^9 times (a hang) over cells the frame does not hold."""
    frame = watch.build_frame("SG", "8800000015", WATCH_UD + "1000000000,1,234,10")
    assert "cell count 1000000000 does not fit" in str(refused(watch, frame))


def test_watch_wifi_count_beyond_the_fields_is_refused():
    frame = watch.build_frame("SG", "8800000015", WATCH_UD + "0,1000000000,a,00:11:22:33:44:55,-50")
    assert "Wi-Fi count 1000000000 does not fit" in str(refused(watch, frame))


def test_watch_counts_that_fit_still_decode():
    frame = decode(watch, watch.build_frame("SG", "8800000015", WATCH_UD + "1,1,234,10,55C0,3B882A2,132,"
                                            "1,ap,00:11:22:33:44:55,-50"))
    assert frame.messages[0].network["cellTowers"][0]["cellId"] == 0x3B882A2
    assert frame.messages[0].network["wifiAccessPoints"] == [{"macAddress": "00:11:22:33:44:55",
                                                              "signalStrength": -50}]


def test_watch_status_word_padded_with_a_separator_control_byte():
    """str.strip() removes \\x1c, int() does not: the stripped text is parsed."""
    frame = decode(watch, watch.build_frame("SG", "8800000015", WATCH_UD[:-9] + "\x1c10010\x1c,0,0"))
    assert isinstance(frame, Frame) and frame.messages[0].attributes.get("alarm") == "sos"


# -- h02 ------------------------------------------------------------------------------------

H02_BINARY = bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024")
H02_V1 = b"*HQ,4106012736,V1,224434,A,1827.3855,N,06705.7577,W,000.00,000,100117,FFFFFBFF#"


def test_h02_binary_report_with_an_impossible_date_is_a_protocol_error():
    """31 September passes the BCD check; its _Malformed escaped as a ValueError."""
    bad = H02_BINARY.replace(bytes.fromhex("131116"), bytes.fromhex("310924"))
    assert "invalid date/time" in str(refused(h02, bad))
    assert isinstance(decode(h02, H02_BINARY), Frame)


@pytest.mark.parametrize("frame", [
    H02_V1.replace(b"FFFFFBFF#", b"FFFFDFFF,69129336,0,100.0,1.2.3,5141,5A20#"),   # altitude "1.2.3"
    H02_V1.replace(b",FFFFFBFF#", b",\x1cFFFFFBFF#"),                               # status padded
    H02_V1.replace(b",1827.3855,", b"," + b"9" * 400 + b"27.3855,"),                # 400-digit degrees
], ids=["altitude-two-dots", "status-control-byte", "degrees-400-digits"])
def test_h02_malformed_text_fields_give_a_frame(frame):
    """float('1.2.3'), int('\\x1c..', 16) and int(400 digits) + float escaped."""
    assert isinstance(decode(h02, frame), Frame)


def test_h02_coordinate_a_float_cannot_hold_gives_no_record():
    frame = decode(h02, H02_V1.replace(b",1827.3855,", b"," + b"9" * 400 + b"27.3855,"))
    assert frame.messages == ()


def test_h02_ack_and_commands_echo_a_non_ascii_device_id():
    """The id is read as latin-1; ack and commands encoded it as ASCII (UnicodeEncodeError)."""
    session = h02.CODEC.new_session({"ack": True})
    frame = session.decode_frame(H02_V1.replace(b"4106012736", b"41060\xe92736"), NOW)
    assert frame.reply == b"*HQ,41060\xe92736,V4,V1,20260601120000#"
    assert session.encode_command(Command("engineStop"), NOW) == b"*HQ,41060\xe92736,S20,120000,1,1#"


# -- osmand -----------------------------------------------------------------------------------

def osmand_request(url: str, body: bytes = b"", **headers) -> list | ProtocolError:
    method = "POST" if body else "GET"
    return bounded(lambda: osmand.decode_request(HttpRequest(method, url, dict(headers), body)))


def test_osmand_url_with_an_unbalanced_ipv6_bracket_is_a_protocol_error():
    """urlsplit("//x[") raises ValueError("Invalid IPv6 URL")."""
    assert "unreadable URL" in str(osmand_request("//x[?id=1&lat=1&lon=2"))


def test_osmand_long_digit_run_is_refused_in_linear_time():
    """The old number pattern backtracked quadratically: 60 000 digits and a bad
    tail took minutes."""
    start = time.process_time()
    outcome = osmand_request("/?id=1&lon=2&lat=" + "1" * 60000 + "x")
    assert isinstance(outcome, ProtocolError) and "not a number" in str(outcome)
    assert time.process_time() - start < 0.5
    assert osmand_request("/?id=1&lon=2&lat=11.5e1")[0].latitude == 115.0


def test_osmand_timestamp_before_year_one_in_utc_is_a_protocol_error():
    outcome = osmand_request("/?id=1&lat=1&lon=2&timestamp=0001-01-01T00:00%2B01:00")
    assert "timestamp out of range" in str(outcome)


def test_osmand_json_battery_level_a_float_cannot_scale_is_dropped():
    body = json.dumps({"device_id": "x", "location": {
        "timestamp": "2026-01-01T00:00:00Z", "coords": {"latitude": 1, "longitude": 2},
        "battery": {"level": 1e307}}}).encode()
    drafts = osmand_request("/", body, **{"Content-Type": "application/json"})
    assert "batteryLevel" not in drafts[0].attributes


def test_osmand_error_about_a_lone_surrogate_is_a_protocol_error():
    """JSON "\\ud800" is a lone surrogate; the error's frame bytes encoded it strictly."""
    body = (b'{"device_id": "x", "location": {"timestamp": "\\ud800", '
            b'"coords": {"latitude": 1, "longitude": 2}}}')
    assert "unreadable timestamp" in str(osmand_request("/", body, **{"Content-Type": "application/json"}))


# -- jt808 refusal -----------------------------------------------------------------------------

def _general_response(terminal: str, serial: int, acked: bytes, result: int) -> bytes:
    """0x8001: acked serial and id (`acked`, 4 bytes) and the result."""
    body = acked + bytes([result])
    return jt808_wire(jt808_header(0x8001, body, terminal, serial) + body)


def test_jt808_refusal_is_the_general_response_with_result_1():
    s = jt808.CODEC.new_session()
    first, second = s.decode_frame(JT808_HEARTBEAT, NOW), s.decode_frame(JT808_HEARTBEAT, NOW)
    acked = bytes.fromhex("00b7" "0002")
    assert first.reply == _general_response("043048325465", 0, acked, 0)
    assert first.refusal == _general_response("043048325465", 0, acked, 1)
    assert second.refusal == _general_response("043048325465", 1, acked, 1)   # one serial per frame


def test_jt808_registration_and_unanswered_messages_have_no_refusal():
    assert decode(jt808, JT808_REGISTER).refusal == b""
    answer = decode(jt808, jt808_message(0x0001, bytes.fromhex("0001" "8103" "00")))
    assert (answer.reply, answer.refusal) == (b"", b"")


def test_wialon_refusal_codes():
    s = wialon.CODEC.new_session()
    s.decode_frame(b"#L#2.0;860000000000015;NA;", NOW)
    frame = s.decode_frame(b"#SD#010525;120005;5231.2005;N;01324.1297;E;12;45;30;9\r\n", NOW)
    assert frame.messages and frame.refusal == b"#ASD#-1\r\n"


# -- meitrack: hex fields padded with a control byte ----------------------------------------

MEITRACK_AAA = ("AAA,35,-7.266760,112.743550,140521095314,A,3,22,0,275,2.7,45,1984,8059,510|1|3504|EBFE,"
                "{io},0000|0000|0000|0914|0002,,,,,{temperature}")


@pytest.mark.parametrize(("io", "temperature", "expected"), [
    ("\x1c0A1B", "", {"input": 0x0A, "output": 0x1B}),
    ("0000", "\x1c01FF00", {"temp1": -2.56}),
], ids=["io", "temperature"])
def test_meitrack_hex_fields_are_read_as_stripped(io, temperature, expected):
    """The pattern matched the stripped text, int() then read the unstripped one."""
    frame = decode(meitrack, meitrack_text(MEITRACK_AAA.format(io=io, temperature=temperature)))
    assert expected.items() <= frame.messages[0].attributes.items()


# -- numbers a float cannot hold ------------------------------------------------------------

GL200_FRI = (b"+RESP:GTFRI,060100,864251020186064,,12000,10,1,1,22.8,271,0.0,151.654321,-33.123456,"
             b"20240501101112,,,,,00,0.0,,,,100,210000,,,,20240501101112,0005$")


def test_gl200_power_with_400_digits_is_inf_not_an_overflow():
    """int(400 digits) / 1000 raised OverflowError; the sanitiser drops inf."""
    frame = decode(gl200, GL200_FRI.replace(b",12000,", b"," + b"9" * 400 + b","))
    assert frame.messages[0].attributes["power"] == float("inf")
    assert decode(gl200, GL200_FRI).messages[0].attributes["power"] == 12.0


GL200_OBD = (b"+RESP:GTOBD,1F0109,864251020135483,4T1BE46KX7U018210,gv500,0,78FFFF,4T1BE46KX7U018210,1,"
             b"13411,981B81C0,787,3,43,,921,463,1,10,0300030103030304001200310351035203530354,20,55,,1286,"
             b"0,6.5,74,21.6,3.379710,6.529714,20150813074824,0621,0030,51C0,A2B3,00,0.0,20150813074828,"
             b"A7E9$")


def test_gl200_obd_mileage_a_float_cannot_hold_is_not_an_odometer():
    """round(float(400 digits) * 1000) raised OverflowError."""
    assert decode(gl200, GL200_OBD).messages[0].attributes["obdOdometer"] == 0
    frame = decode(gl200, GL200_OBD.replace(b",00,0.0,2015", b",00," + b"9" * 400 + b".0,2015"))
    assert isinstance(frame, Frame) and "obdOdometer" not in frame.messages[0].attributes


def test_suntech_distance_a_float_cannot_hold_is_a_protocol_error():
    frame = SA200_STT.replace(b";41548;", b";" + b"9" * 400 + b";")
    assert "distance (out of range)" in str(refused(suntech, frame))


def test_suntech_fuel_sensor_with_400_hex_digits_is_not_a_reading():
    frame = decode(suntech, UEX_FUEL_SENSORS.replace(b"N_0=0419.0", b"N_0=" + b"F" * 400 + b".0"))
    assert isinstance(frame, Frame) and "fuel0" not in frame.messages[0].attributes


@pytest.mark.parametrize("frame", [
    b"(013632651491,ZC20,180716,144222,6," + b"9" * 400 + b",65535,0)",
    b"(027028258309BR00160711A" + b"9" * 400 + b"3606.3972N02225.9458E000.0031706001.00,00000000L00000000)",
], ids=["zc20-battery", "degrees"])
def test_tk103_numbers_a_float_cannot_hold_give_no_record(frame):
    outcome = decode(tk103, frame)
    assert isinstance(outcome, Frame) and outcome.messages == ()


# -- framers: linear time however the bytes arrive ---------------------------------------

def test_jt808_text_frame_trickling_in_is_scanned_once():
    """Each byte rescanned the whole "(..." frame: 3 frames of 4 kB, byte by byte,
    took over 2 s."""
    feed(jt808, (b"(" + b"A" * 4096) * 3, 1)
    frames = feed(jt808, b"(740190311185,1,001,ELOCK,3,529439)", 1)
    assert [f.raw for f in frames] == [b"(740190311185,1,001,ELOCK,3,529439)"]


def test_jt808_run_of_open_parentheses_is_scanned_once():
    """Each "(" in printable garbage scanned up to 4 kB for its ")" (fuzz
    finding: 700 of them took over 1 s)."""
    frames = feed(jt808, (b"(" + b"AB,") * 4000 + b"\x00(740190311185,1,001,ELOCK,3,529439)", 64)
    assert [f.raw for f in frames] == [b"(740190311185,1,001,ELOCK,3,529439)"]


TK103_TEXT = (b"(864555555555555,ZC03,191117,234207,$3 .Check interval is set to 240 "
              b"minute(s).\r\n5 .SOS SMS Alert: On$)")
"""A ")" inside $...$ that does not end the frame."""


def test_tk103_frame_trickling_in_is_scanned_once():
    """The same for "(..." without ")": 60 frames of 1 kB, byte by byte, took
    over 2 s; the resumed scan keeps track of $...$."""
    feed(tk103, (b"(" + b"A" * 1023) * 60, 1)
    assert [f.raw for f in feed(tk103, TK103_TEXT, 1)] == [TK103_TEXT]
    assert [f.raw for f in feed(tk103, TK103_TEXT * 2, 7)] == [TK103_TEXT] * 2


def test_teltonika_resync_after_a_stalled_start_costs_linear_time():
    """A zero run announcing a 16 kB packet, then 200 packets with a bad CRC,
    in 3-byte pieces: every piece CRC'd every later candidate (about 6 s)."""
    good = teltonika_packet(b"\x08\x01" + _record8({}) + b"\x01")
    bad = good[:-1] + bytes([good[-1] ^ 1])
    feed(teltonika, b"\x00" * 6 + b"\x3f\xf0" + bad * 200, 3)
    frames = feed(teltonika, b"\x00" * 6 + b"\x3f\xf0" + bad + good, 3)
    assert [f.raw for f in frames if f.messages] == [good]


@pytest.mark.parametrize("name", PROTOCOLS)
def test_stream_of_repeated_frame_heads_fed_byte_by_byte_stays_fast(name):
    """Framers resume their scan: the start of a seed frame followed by 6 kB of
    its own bytes, one byte per call, stays well under the CPU bound."""
    rng = random.Random(name)
    for seed in rng.sample(seed_inputs(name, corpus=False), 3):
        head = seed[1:]
        data = head[:len(head) // 2] + (head[1:] or b"0") * (6000 // max(1, len(head)) + 1)
        start = time.process_time()
        bounded(lambda data=data: run_input(name, bytes([ENTRIES.index("chunks")]) + data[:6000], NOW))
        assert time.process_time() - start < CPU_BOUND_S / 2

