"""Decode benchmark: frames decoded per second on one core, for every registered protocol.

Run from the repository root::

    python3 benchmarks/decode.py [--seconds 1] [--protocol gt06 ...]

Per protocol it times two workloads, each repeated for at least `--seconds`:

- device stream: what the protocol's own device side (`protocols.registry.DEVICES`)
  sends on one connection: a login and 1,000 reports, every 10th an "sos" alarm,
  along a short route.  Each wire message is fed to `session.receive_data` as one
  chunk, as one TCP segment would bring it (`receive_datagram` for UDP devices,
  `decode_frame` with an `HttpRequest` for HTTP ones), on a new session per pass,
  so framing, checksums and decoding are all in the figure.
- corpus: the frames of `../shared/corpus/<name>.json` (when present), each
  through `session.decode_frame`, in file order on one session per set of decoder
  options (with the base options the corpus tests use, e.g. lenient GT06).  Real
  devices' frames of many types, not only the simulator's favourite.  Frames the
  decoder refuses (ProtocolError) count as decoded and are shown apart; any other
  exception (a codec bug) is counted there too and named below the table.

It prints one row per protocol: frames per pass, frames/s and microseconds per
frame for each workload.  Pure Python on one thread: one core by construction.
Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO.parent / "shared" / "corpus"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
UNIQUE_ID = "860000000000000"
REPORTS = 1_000
ALARM_EVERY = 10
BUGS: list[str] = []    # codec exceptions other than ProtocolError, printed after the table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="time each workload of each protocol at least this long (default 1)")
    parser.add_argument("--protocol", action="append", metavar="NAME",
                        help="only this protocol (repeatable; default: all registered)")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:       # run as a script from anywhere
        sys.path.insert(0, str(REPO))
    import protocols

    names = args.protocol or sorted(protocols.CODECS)
    unknown = [name for name in names if name not in protocols.CODECS]
    if unknown:
        print(f"unknown protocol(s): {', '.join(unknown)}; known: "
              f"{', '.join(sorted(protocols.CODECS))}", file=sys.stderr)
        return 2

    header = ("protocol", "transport", "device frames", "frames/s", "us/frame",
              "corpus frames", "refused", "frames/s", "us/frame")
    widths = (10, 9, 13, 10, 9, 13, 7, 10, 9)
    print(f"decode rate, one core, >= {args.seconds:g} s per workload "
          f"(device stream: login + {REPORTS} reports, 1 in {ALARM_EVERY} an alarm)")
    print("  ".join(f"{title:>{width}}" for title, width in zip(header, widths, strict=True)))
    for name in names:
        row = [name, *measure_device(name, args.seconds), *measure_corpus(name, args.seconds)]
        print("  ".join(f"{cell:>{width}}" for cell, width in zip(row, widths, strict=True)),
              flush=True)
    for line in BUGS:
        print(f"note: {line} (counted as refused)")
    return 0


# -- timing ---------------------------------------------------------------------------


def timed_rate(one_pass: Callable[[], int], seconds: float) -> tuple[int, float]:
    """(frames per pass, frames per second) of `one_pass`, repeated for >= `seconds`
    after one warm-up pass."""
    frames = one_pass()
    passes = 0
    start = time.perf_counter()
    while True:
        one_pass()
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return frames, frames * passes / elapsed


def _cells(frames: int, rate: float) -> list[str]:
    if not frames:
        return [str(frames), "-", "-"]
    return [str(frames), f"{rate:,.0f}", f"{1e6 / rate:.1f}"]


# -- device stream ----------------------------------------------------------------------


def device_messages(name: str) -> tuple[str, list[Any]]:
    """(transport, the wire messages of one connection: login + reports)."""
    from protocols import DeviceReport
    from protocols.registry import DEVICES

    device = DEVICES[name]
    messages: list[Any] = []
    login = device.login(UNIQUE_ID, 1)
    if login:
        messages.append(login)
    start = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    latitude, longitude, course_deg = 52.52, 13.405, 45.0
    for number in range(1, REPORTS + 1):
        course_deg = (course_deg + 7.0) % 360.0
        latitude += 0.0001 * math.cos(math.radians(course_deg))
        longitude += 0.00016 * math.sin(math.radians(course_deg))
        report = DeviceReport(
            fix_time=start + dt.timedelta(seconds=10 * number), latitude=latitude,
            longitude=longitude, speed_kn=20.0 + number % 30, course_deg=course_deg, valid=True,
            alarm="sos" if number % ALARM_EVERY == 0 else None)
        messages.append(device.report(UNIQUE_ID, (number + 1) % 0xFFFF or 1, report))
    return device.transport, messages


def measure_device(name: str, seconds: float) -> list[str]:
    from protocols.registry import CODECS, DEVICES

    if DEVICES.get(name) is None:
        return ["-", "-", "-", "-"]
    transport, messages = device_messages(name)
    codec = CODECS[name]

    def one_pass() -> int:
        session = codec.new_session()
        frames = 0
        if transport == "http":
            for request in messages:
                session.decode_frame(request, NOW)
                frames += 1
        elif transport == "udp":
            for datagram in messages:
                frames += len(session.receive_datagram(datagram, NOW))
        else:
            for chunk in messages:
                frames += len(session.receive_data(chunk, NOW))
        return frames

    return [transport, *_cells(*timed_rate(one_pass, seconds))]


# -- corpus ---------------------------------------------------------------------------


def corpus_sources(name: str) -> list[tuple[Path, Mapping[str, Any]]]:
    """(corpus file, base decoder options) for protocol `name`: as the corpus tests
    run them when their table is importable, else `<name>.json` (and the
    `<name>text` / `<name>binary` halves some protocols have) with no options."""
    if not CORPUS_DIR.is_dir():
        return []
    try:
        from tests.protocols.test_corpus import SPECS
    except Exception:   # pytest missing, or the table moved: fall back to file names
        SPECS = []
    sources = [(CORPUS_DIR / spec.file, dict(spec.options)) for spec in SPECS
               if spec.protocol == name and (CORPUS_DIR / spec.file).is_file()]
    if sources:
        return sources
    stems = (name, f"{name}text", f"{name}binary")
    return [(CORPUS_DIR / f"{stem}.json", {}) for stem in stems
            if (CORPUS_DIR / f"{stem}.json").is_file()]


def corpus_frames(name: str) -> list[tuple[Mapping[str, Any], list[Any]]]:
    """The corpus frames of `name`, grouped by decoder options, in file order."""
    from protocols import HttpRequest

    groups: dict[str, tuple[Mapping[str, Any], list[Any]]] = {}
    for path, base in corpus_sources(name):
        with path.open(encoding="utf-8") as handle:
            cases = json.load(handle)["cases"]
        for case in cases:
            options = dict(base)
            options.update((case.get("decoder_config") or {}).get("settings") or {})
            payload = case["payload"]
            if payload["type"] == "http":
                item: Any = HttpRequest(method=payload["method"], url=payload["url"],
                                        headers=dict(payload.get("headers") or {}),
                                        body=bytes.fromhex(payload.get("body_hex") or ""))
            elif "hex" in payload:
                item = bytes.fromhex(payload["hex"])
            else:   # ISO-8859-1 as the README says; a few cases hold other text
                text = payload["text"]
                try:
                    item = text.encode("latin-1")
                except UnicodeEncodeError:
                    item = text.encode("utf-8")
            key = json.dumps(options, sort_keys=True)
            groups.setdefault(key, (options, []))[1].append(item)
    return list(groups.values())


def measure_corpus(name: str, seconds: float) -> list[str]:
    from protocols import ProtocolError
    from protocols.registry import CODECS

    groups = corpus_frames(name)
    if not groups:
        return ["-", "-", "-", "-"]
    codec = CODECS[name]
    refused = 0
    crashes: dict[str, int] = {}

    def one_pass() -> int:
        nonlocal refused
        refused = frames = 0
        crashes.clear()
        for options, items in groups:
            session = codec.new_session(options)
            for item in items:
                try:
                    session.decode_frame(item, NOW)
                except ProtocolError:
                    refused += 1
                except Exception as bug:    # a codec bug: noted, and the rest still timed
                    text = f"{type(bug).__name__}: {bug}"
                    crashes[text] = crashes.get(text, 0) + 1
                frames += 1
        return frames

    frames, rate = timed_rate(one_pass, seconds)
    for text, count in crashes.items():
        BUGS.append(f"{name}: {count} corpus frame(s) raised {text}")
    cells = _cells(frames, rate)
    return [cells[0], str(refused + sum(crashes.values())), *cells[1:]]


if __name__ == "__main__":
    sys.exit(main())
