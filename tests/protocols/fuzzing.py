"""Seeds, mutations and entry points for robustness testing of every decoder.

Shared by `tests/protocols/test_robustness.py` (Hypothesis properties) and
`benchmarks/fuzz.py` (atheris or a random-mutation loop), so that both feed the
decoders the same kinds of input.

A fuzz *input* is bytes: its first byte (the selector) chooses the entry point
and the decoder options (see `Case`), the rest is the payload.  For the HTTP
protocol (osmand) the payload is "<path and query>\\r\\n\\r\\n<body>" and the
selector also chooses the method and the Content-Type.

Seeds (`seed_frames`) are valid frames of each protocol: what its device side
sends (`protocols.registry.DEVICES`: login, reports with and without an alarm,
heartbeat), the bytes literals and ``bytes.fromhex("...")`` constants of the
protocol's own test modules (found with `ast`, nothing is executed), and, when
the directory exists, the frames of ``../shared/corpus/<name>.json``.

The contract every entry point must keep: return, or raise `ProtocolError`;
never another exception, never a hang.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import functools
import json
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import protocols
from protocols import DeviceReport, HttpRequest, ProtocolError
from protocols.registry import CODECS, DEVICES

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TESTS_DIR = Path(__file__).resolve().parent
CORPUS_DIR = TESTS_DIR.parents[1].parent / "shared" / "corpus"
UNIQUE_ID = "860000000000015"

ENTRIES = ("frame", "stream", "chunks", "datagram", "replay", "replay-stream")
"""Entry points: `decode_frame`; `receive_data` with the whole payload, then
drained with b"" (a bad frame after good ones is raised by the next call);
`receive_data` fed in chunks; `receive_datagram`; `protocols.replay` with the
payload as one frame and as stream bytes."""

OPTION_SETS: dict[str, tuple[dict[str, Any], ...]] = {
    "gl200": ({}, {"ack": False}),
    "gps103": ({},),
    "gt06": ({}, {"lenient": True}, {"lenient": True, "modelOverride": "VL103"},
             {"modelOverride": "NT20"}, {"lenient": True, "modelOverride": "R11"},
             {"modelOverride": "SEEWORLD"}, {"modelOverride": "LW4G"}, {"modelOverride": "QH302R"}),
    "h02": ({}, {"ack": True}, {"messageLength": 45}),
    "jt808": ({}, {"lenient": True}, {"lenient": True, "modelOverride": "JC371"},
              {"lenient": True, "modelOverride": "AL300"}, {"modelOverride": "C5L"},
              {"modelOverride": "MV710G"}),
    "meitrack": ({}, {"lenient": True}),
    "osmand": ({},),
    "suntech": ({}, {"hbm": 1, "includeAdc": True, "includeRpm": True, "includeTemp": True},
                {"hbm": 2}, {"protocolType": 1, "ackEmergency": True}),
    "teltonika": ({}, {"lenient": True}, {"lenient": True, "extended": True},
                  {"lenient": True, "modelOverride": "FMB920"}, {"modelOverride": "FMB120"}),
    "tk103": ({},),
    "watch": ({}, {"lenient": True}),
    "wialon": ({}, {"lenient": True}, {"password": "secret"}),
}
"""Decoder settings tried per protocol (dialects switch on other code paths)."""

HTTP_METHODS = ("GET", "POST", "POST", "PUT")
HTTP_TYPES = ("", "application/json", "application/x-www-form-urlencoded")
HTTP_SEPARATOR = b"\r\n\r\n"


class Hang(Exception):
    """Raised by the watchdog: one call took longer than its bound."""


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """One fuzz input taken apart: entry point, decoder options, payload.
    `chunk` is the chunk size of the "chunks" entry."""

    protocol: str
    entry: str
    options: dict[str, Any]
    payload: bytes
    chunk: int = 1
    method: str = "GET"
    content_type: str = ""

    def describe(self) -> str:
        extra = f" chunk={self.chunk}" if self.entry == "chunks" else ""
        if self.protocol == "osmand":
            extra += f" method={self.method} content-type={self.content_type!r}"
        return f"entry={self.entry} options={self.options}{extra}"


def protocol_names() -> list[str]:
    """Every registered protocol, sorted."""
    return sorted(CODECS)


def is_http(name: str) -> bool:
    return any(listen.startswith("http:") for listen in CODECS[name].default_listen)


def decode_input(name: str, data: bytes) -> Case:
    """The `Case` a fuzz input stands for (see the module docstring)."""
    selector = data[0] if data else 0
    payload = data[1:]
    options_list = OPTION_SETS.get(name, ({},))
    if is_http(name):   # bits 0-2 entry, 3-4 method, 5-7 Content-Type
        entry = ENTRIES[(selector & 0x07) % len(ENTRIES)]
        method = HTTP_METHODS[(selector >> 3) & 0x03]
        content_type = HTTP_TYPES[(selector >> 5) % len(HTTP_TYPES)]
        return Case(name, entry, dict(options_list[0]), payload, 1, method, content_type)
    entry = ENTRIES[selector % len(ENTRIES)]
    options = dict(options_list[(selector // len(ENTRIES)) % len(options_list)])
    return Case(name, entry, options, payload, 1 + (selector >> 5))


def encode_input(name: str, frame: bytes | HttpRequest, entry: str = "frame",
                 options_index: int = 0) -> bytes:
    """A fuzz input that decodes to `frame` on `entry` with the protocol's
    `options_index`-th option set (HTTP: method and Content-Type of `frame`)."""
    if isinstance(frame, HttpRequest):
        method = 1 if frame.method.upper() == "POST" else 0
        kind = next((str(v) for k, v in frame.headers.items() if k.lower() == "content-type"), "")
        type_index = 1 if "json" in kind else (2 if "form" in kind else 0)
        selector = ENTRIES.index(entry) | method << 3 | type_index << 5
        payload = frame.url.encode("utf-8", "surrogateescape") + HTTP_SEPARATOR + frame.body
        return bytes([selector]) + payload
    options_list = OPTION_SETS.get(name, ({},))
    selector = ENTRIES.index(entry) + len(ENTRIES) * (options_index % len(options_list))
    return bytes([selector]) + frame


def http_request(case: Case) -> HttpRequest:
    """The HttpRequest of an HTTP protocol's case (path as the HTTP adapter
    decodes it: UTF-8, bad bytes replaced)."""
    url, _, body = case.payload.partition(HTTP_SEPARATOR)
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    return HttpRequest(case.method, url.decode("utf-8", "replace"), headers, body)


def run_case(case: Case, now: dt.datetime = NOW) -> None:
    """Feed the case to a new session through its entry point.  Returns, or
    raises whatever the decoder raised (ProtocolError is the only allowed kind)."""
    name, payload = case.protocol, case.payload
    session = CODECS[name].new_session(case.options)
    if is_http(name):
        request = http_request(case)
        if case.entry in ("stream", "chunks"):
            session.receive_data(payload, now)
        elif case.entry == "datagram":
            session.receive_datagram(payload, now)
        elif case.entry.startswith("replay"):
            protocols.replay(name, [request], case.options, now=now)
        else:
            session.decode_frame(request, now)
        return
    if case.entry == "frame":
        session.decode_frame(payload, now)
    elif case.entry == "stream":
        _drain(session, [payload], now)
    elif case.entry == "chunks":
        size = case.chunk
        _drain(session, [payload[i:i + size] for i in range(0, len(payload), size)], now)
    elif case.entry == "datagram":
        session.receive_datagram(payload, now)
    elif case.entry == "replay":
        protocols.replay(name, [payload], case.options, now=now, errors="skip")
    else:
        protocols.replay(name, [payload, b""], case.options, now=now, stream=True, errors="skip")


def _drain(session: Any, chunks: Sequence[bytes], now: dt.datetime) -> None:
    """receive_data for every chunk, going on after a ProtocolError as the
    sessions document ("call receive_data(b'', now) to continue"); then b""
    until the session has nothing more to say.  Bounded: a session raising for
    ever on b"" stops after as many tries as there were bytes."""
    for chunk in chunks:
        try:
            session.receive_data(chunk, now)
        except ProtocolError:
            pass
    for _ in range(sum(len(c) for c in chunks) + 2):
        try:
            if not session.receive_data(b"", now):
                return
        except ProtocolError:
            continue


def run_input(name: str, data: bytes, now: dt.datetime = NOW) -> None:
    """`run_case(decode_input(name, data))`."""
    run_case(decode_input(name, data), now)


# --------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------

_REPORTS = (
    DeviceReport(dt.datetime(2026, 5, 1, 12, 0, 5, tzinfo=dt.UTC), 52.520008, 13.404954, 12.5, 45.0),
    DeviceReport(dt.datetime(2026, 5, 1, 12, 1, 7, tzinfo=dt.UTC), -33.868820, -151.209290, 0.0, 359.0,
                 valid=False),
    DeviceReport(dt.datetime(2026, 5, 1, 12, 2, 9, tzinfo=dt.UTC), 40.058413, -76.336618, 6.2, 188.0,
                 alarm="sos"),
)


def device_frames(name: str) -> list[bytes | HttpRequest]:
    """What the protocol's device side sends: login, reports, heartbeat."""
    device = DEVICES[name]
    frames: list[bytes | HttpRequest] = []
    login = device.login(UNIQUE_ID, 1)
    if login:
        frames.append(login)
    for serial, report in enumerate(_REPORTS, start=2):
        try:
            frames.append(device.report(UNIQUE_ID, serial, report))
        except ValueError:          # the protocol has no way to carry this alarm
            continue
    heartbeat = device.heartbeat(UNIQUE_ID, 9)
    if heartbeat:
        frames.append(heartbeat)
    return frames


def _literal_bytes(node: ast.AST) -> bytes | None:
    """A bytes constant, or the value of ``bytes.fromhex("<constant>")``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
        return node.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "fromhex" and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        try:
            return bytes.fromhex(node.args[0].value)
        except ValueError:
            return None
    return None


def module_test_frames(name: str) -> list[bytes]:
    """Bytes constants of tests/protocols/test_<name>*.py (at least 4 bytes),
    in file order, without duplicates.  Only parsed, never imported."""
    found: dict[bytes, None] = {}
    for path in sorted(TESTS_DIR.glob(f"test_{name}*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            value = _literal_bytes(node)
            if value is not None and len(value) >= 4:
                found.setdefault(value, None)
    return list(found)


def _corpus_files(name: str) -> list[Path]:
    if not CORPUS_DIR.is_dir():
        return []
    names = [f"{name}.json"] + ([f"{name}text.json", f"{name}binary.json"] if name == "gl200" else [])
    return [CORPUS_DIR / file for file in names if (CORPUS_DIR / file).is_file()]


def corpus_frames(name: str) -> list[bytes | HttpRequest]:
    """The frames of ../shared/corpus for `name` (empty when the directory is absent)."""
    frames: list[bytes | HttpRequest] = []
    for path in _corpus_files(name):
        with path.open(encoding="utf-8") as handle:
            cases = json.load(handle).get("cases", [])
        for case in cases:
            payload = case.get("payload") or {}
            kind = payload.get("type")
            if kind == "http":
                frames.append(HttpRequest(payload.get("method", "GET"), payload.get("url", "/"),
                                          dict(payload.get("headers") or {}),
                                          bytes.fromhex(payload.get("body_hex") or "")))
            elif "hex" in payload:
                frames.append(bytes.fromhex(payload["hex"]))
            elif "text" in payload:
                frames.append(payload["text"].encode("utf-8"))
    return frames


@functools.cache
def seed_frames(name: str, *, corpus: bool = True) -> tuple[bytes | HttpRequest, ...]:
    """Valid frames of protocol `name`: device side, test modules, corpus."""
    frames: list[bytes | HttpRequest] = [*device_frames(name)]
    if is_http(name):
        frames += _http_test_frames(name)
    else:
        frames += module_test_frames(name)
    if corpus:
        frames += corpus_frames(name)
    unique: dict[Any, bytes | HttpRequest] = {}
    for frame in frames:
        key = (frame.method, frame.url, frame.body) if isinstance(frame, HttpRequest) else frame
        unique.setdefault(key, frame)
    return tuple(unique.values())


def _http_test_frames(name: str) -> list[HttpRequest]:
    """HTTP protocols: the str constants of the test modules that look like a
    path and query ("/?id=..."), as GET requests, and bytes constants starting
    with "{" as JSON bodies."""
    frames: list[HttpRequest] = []
    for path in sorted(TESTS_DIR.glob(f"test_{name}*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.startswith("/?") and "=" in node.value:
                frames.append(HttpRequest("GET", node.value))
            value = _literal_bytes(node)
            if value is not None and value.lstrip()[:1] == b"{":
                frames.append(HttpRequest("POST", "/", {"Content-Type": "application/json"}, value))
    return frames


def seed_inputs(name: str, *, corpus: bool = True) -> list[bytes]:
    """Fuzz inputs built from the seeds: each frame on `decode_frame` with the
    default options, and on the stream with the protocol's second option set
    (lenient where it has one)."""
    inputs: list[bytes] = []
    for frame in seed_frames(name, corpus=corpus):
        inputs.append(encode_input(name, frame, "frame", 0))
        inputs.append(encode_input(name, frame, "stream", 1))
    return inputs


# --------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------

BIG_DECIMALS = (b"1000000000", b"4294967295", b"99999999999999999999", b"-1", b"0", b"65535",
                b"9" * 400, b"1e999", b"nan", b"-0")
"""Decimal text written over a number of a text frame: counts and lengths far
beyond the frame, negative ones, and numbers a float cannot hold."""

BIG_BINARY = (b"\xff", b"\xff\xff", b"\xff\xff\xff\xff", b"\x7f\xff", b"\x7f\xff\xff\xff", b"\x00",
              b"\x80\x00", b"\xff" * 8)
"""Bytes written over a binary frame's count and length positions."""

_NUMBER_RUN = re.compile(rb"-?\d+")

MUTATIONS = ("flip", "replace", "insert", "delete", "truncate", "duplicate", "big_number",
             "big_binary", "repeat")


def mutate_once(rng: random.Random, data: bytes, op: str, limit: int = 65536) -> bytes:
    """Apply mutation `op` (one of MUTATIONS) at a place chosen by `rng`;
    the result is at most `limit` bytes."""
    buf = bytearray(data)
    size = len(buf)
    if op == "flip" and size:
        buf[rng.randrange(size)] ^= 1 << rng.randrange(8)
    elif op == "replace" and size:
        buf[rng.randrange(size)] = rng.randrange(256)
    elif op == "insert":
        at = rng.randrange(size + 1)
        buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif op == "delete" and size:
        at = rng.randrange(size)
        del buf[at:at + rng.randint(1, 8)]
    elif op == "truncate" and size:
        del buf[rng.randrange(size):]
    elif op == "duplicate" and size:
        at = rng.randrange(size)
        end = min(size, at + rng.randint(1, 64))
        buf[end:end] = buf[at:end]
    elif op == "big_number":
        runs = list(_NUMBER_RUN.finditer(bytes(buf)))
        if runs:
            run = rng.choice(runs)
            buf[run.start():run.end()] = rng.choice(BIG_DECIMALS)
    elif op == "big_binary" and size:
        value = rng.choice(BIG_BINARY)
        at = rng.randrange(size)
        buf[at:at + len(value)] = value
    elif op == "repeat" and size:
        at = rng.randrange(size)
        piece = buf[at:at + rng.randint(1, 32)]
        buf[at:at] = piece * rng.randint(2, max(2, min(2000, limit // max(1, len(piece)))))
    return bytes(buf[:limit])


def mutate(rng: random.Random, data: bytes, count: int | None = None, limit: int = 65536) -> bytes:
    """1-4 random mutations (or `count`) of `data`."""
    for _ in range(count if count is not None else rng.randint(1, 4)):
        data = mutate_once(rng, data, rng.choice(MUTATIONS), limit)
    return data


def mutate_input(rng: random.Random, data: bytes, limit: int = 65536) -> bytes:
    """Mutate a fuzz input: the payload, and now and then the selector."""
    selector = data[:1] or b"\x00"
    if rng.random() < 0.2:
        selector = bytes([rng.randrange(256)])
    return selector + mutate(rng, data[1:], limit=limit)


def watchdog(seconds: float, call: Callable[[], object], timer: int | None = None) -> object:
    """Run `call` under an interval timer that raises `Hang` after `seconds`
    (process CPU time by default: immune to a loaded machine, and not the
    SIGALRM libFuzzer uses for its own timeout).  Unix only."""
    import signal

    which = signal.ITIMER_VIRTUAL if timer is None else timer
    signum = {signal.ITIMER_REAL: signal.SIGALRM, signal.ITIMER_VIRTUAL: signal.SIGVTALRM,
              signal.ITIMER_PROF: signal.SIGPROF}[which]

    def expired(_signum: int, _frame: object) -> None:
        raise Hang(f"call exceeded {seconds} s")

    previous = signal.signal(signum, expired)
    signal.setitimer(which, seconds)
    try:
        return call()
    finally:
        signal.setitimer(which, 0)
        signal.signal(signum, previous)


__all__ = [
    "CORPUS_DIR", "ENTRIES", "MUTATIONS", "NOW", "OPTION_SETS", "Case", "Hang", "corpus_frames",
    "decode_input", "device_frames", "encode_input", "http_request", "is_http", "mutate",
    "mutate_input", "mutate_once", "protocol_names", "run_case", "run_input", "seed_frames",
    "module_test_frames", "seed_inputs", "watchdog",
]
