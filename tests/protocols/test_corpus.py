"""Conformance corpus: every case of ../shared/corpus/<protocol>.json through `replay`.

Prints, per protocol, the pass figure (the case's own `kind`/`expect`) and the
reference figure (field-by-field agreement with Traccar's output), lists the
failing cases with reasons, and asserts the thresholds (pass >= 90 %,
reference >= 80 %).  Cases where we decode differently from Traccar on
purpose are listed in `KNOWN_DEVIATIONS` with the reason; any other failure
fails `test_failures_are_only_known_deviations`.

The corpus is data from Traccar's test suite (Apache-2.0); the module is
skipped when ../shared/corpus is absent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping

import pytest

from protocols import ProtocolError, get_codec
from tests.protocols.conftest import CORPUS_SUMMARIES
from tests.protocols.corpus import CORPUS_DIR, case_options, payload_item, run_corpus
from tests.protocols.gt06_captures import crc_x25

if not CORPUS_DIR.is_dir():
    pytest.skip(f"conformance corpus not found at {CORPUS_DIR}", allow_module_level=True)

PASS_THRESHOLD = 0.90
REFERENCE_THRESHOLD = 0.80


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """How to run one protocol's corpus."""

    protocol: str
    file: str
    options: Mapping[str, object] = dataclasses.field(default_factory=dict)
    known_deviations: Mapping[str, str] = dataclasses.field(default_factory=dict)


GT06_DEVIATIONS = {
    "gt06-21": "0x32 altitude is the frame's last two content bytes (687 m); Traccar reads "
               "it from the CRC (-31703 m) and the signal from the serial number",
    "gt06-60": "0x8C OBD frames end with a GPS block (valid fix, 84 km/h beside OBD speed "
               "85 km/h); Traccar ignores it and reports a status record",
    "gt06-79": "0x8C OBD GPS block decoded (invalid fix) instead of a status record",
    "gt06-70": "0x95 short event has no event data; Traccar reads the serial number as eventData",
    "gt06-166": "0x95 short event has no event data; Traccar reads the serial number as eventData",
    "gt06-90": "0x27 cell block with a two-byte MNC is 10 bytes as its length byte says; Traccar "
               "shifts the status block by one byte (signal 12, fence from the serial number)",
    "gt06-95": "0xA3 with a fix also carries the status block (as 0xA5 does); Traccar skips it",
}

TELTONIKA_DEVIATIONS = {
    "teltonika-47": "FMB io11 (ICCID part 1) arrives here as a 2-byte element; Traccar reads 8 bytes "
                    "from its value (the next elements' bytes) into iccid; we keep io11",
}

SPECS = [
    # The corpus is Traccar's test frames, many with hand-edited (stale) CRCs
    # and legacy CRC-less reports: replay them as Traccar does (lenient).
    CorpusSpec("gt06", "gt06.json", {"lenient": True}, GT06_DEVIATIONS),
    # Traccar test frames with hand-edited CRCs / lengths: replay them leniently.
    CorpusSpec("teltonika", "teltonika.json", {"lenient": True}, TELTONIKA_DEVIATIONS),
    # Meitrack: Traccar test frames with hand-edited checksums and a truncated photo packet.
    CorpusSpec("meitrack", "meitrack.json", {"lenient": True}, {
        "meitrack-50": "CCC buffered records with event 1 (SOS) carry alarm sos as AAA reports do; "
                       "Traccar gives no alarm for CCC records"}),
    # Watch: Traccar test frames with hand-edited (stale) length fields.
    CorpusSpec("watch", "watch.json", {"lenient": True}, {
        "watch-50": "TK voice message is acked (TK,1) but not stored: there is no media store, so "
                    "no record with an audio file name (Traccar: a mocked media manager's file)"}),
    CorpusSpec("gps103", "gps103.json"),
    # Wialon: the 2.0 login test frame carries a hand-made CRC: replay leniently.
    CorpusSpec("wialon", "wialon.json", {"lenient": True}),
    CorpusSpec("h02", "h02.json", {}, {
        "h02-19": "V19: we read the status word after IP and ICCID (ignition off) and the ICCID; "
                  "Traccar drops every field after the date (and stamps its clock as fix time)"}),
    CorpusSpec("tk103", "tk103.json", {}, {
        "tk103-1": "BS51 BMS words are big-endian (pack 53.3 V = 14 cells of 3.80-3.82 V); Traccar "
                   "reads them little-endian (537.8 V pack, 59.4 V cells, soc 5632 %)"}),
    CorpusSpec("suntech", "suntech.json", {}, {
        "suntech-1": "zip status report: speed is km/h (0.38 -> 0.21 kn) and the byte after I/O is the "
                     "mode, then message number and the HBM block; Traccar stores the km/h as knots "
                     "and the mode as event"}),
    CorpusSpec("osmand", "osmand.json"),
    # JT808: Traccar test frames with hand-edited checksums: replay them leniently.
    CorpusSpec("jt808", "jt808.json", {"lenient": True}),
    CorpusSpec("gl200", "gl200text.json", {}, {
        "gl200text-38": "GTFRI position append mask 02 adds a field before the mileage; we skip it and "
                        "read mileage, battery and status; Traccar loses mileage and status",
        "gl200text-94": "GTINF with a VIN before the device name: we shift the fields by it; Traccar "
                        "does not, and reads the motion state as ICCID and 12.986 V as battery",
        "gl200text-151": "GTOBD with an empty VIN field: the OBD-connected flag (1) is still decoded; "
                         "Traccar drops the OBD block",
        "gl200text-189": "GTCAN whose expansion block Traccar misaligns: we read the GPS item at the end "
                         "of the frame (a position); Traccar reports no fix (outdated)"}),
    CorpusSpec("gl200", "gl200binary.json", {}, {
        "gl200binary-6": "binary +INF: only the firmware version is decoded (Traccar also gives sat 0 "
                         "and a device time in the year 12842)"}),
]


def _present(spec: CorpusSpec) -> bool:
    return (CORPUS_DIR / spec.file).is_file()


@pytest.fixture(scope="module", params=[s for s in SPECS if _present(s)], ids=lambda s: s.protocol)
def corpus_run(request):
    spec = request.param
    report = run_corpus(spec.protocol, CORPUS_DIR / spec.file, spec.options)
    summary = report.summary(spec.known_deviations)
    CORPUS_SUMMARIES.append(summary)
    return spec, report, summary


def test_corpus_meets_thresholds(corpus_run):
    """Pass >= 90 % and reference agreement >= 80 % (figures in the terminal summary)."""
    _, report, summary = corpus_run
    assert report.pass_rate() >= PASS_THRESHOLD, summary
    assert report.reference_rate() >= REFERENCE_THRESHOLD, summary


def test_failures_are_only_known_deviations(corpus_run):
    """Any failure not documented as a deliberate deviation is a regression."""
    spec, report, summary = corpus_run
    unexpected = [r.case_id for r in report.results
                  if (not r.passed or not r.reference_ok) and r.case_id not in spec.known_deviations]
    assert not unexpected, summary


def test_known_deviations_still_deviate(corpus_run):
    """A deviation that now matches Traccar should leave the list."""
    spec, report, _ = corpus_run
    by_id = {r.case_id: r for r in report.results}
    stale = [c for c in spec.known_deviations
             if c in by_id and by_id[c].reference_ok and by_id[c].passed]
    assert not stale


def _well_formed(frame: bytes) -> bool:
    """Length field, CRC and stop bits agree (checked independently of the codec)."""
    head = 4 if frame[:2] == b"\x79\x79" else 3
    total = head + int.from_bytes(frame[2:head], "big") + 2
    if frame[:2] not in (b"\x78\x78", b"\x79\x79") or total - head - 2 < 5:
        return False
    if len(frame) not in (total - 2, total - 1, total) or not b"\r\n".startswith(frame[total - 2:]):
        return False
    return crc_x25(frame[2:total - 4]) == int.from_bytes(frame[total - 4:total - 2], "big")


@pytest.mark.skipif(not (CORPUS_DIR / "gt06.json").is_file(), reason="no gt06 corpus")
def test_gt06_strict_mode_rejects_exactly_the_damaged_frames():
    """Default (strict) sessions refuse a corpus frame iff its CRC or length is wrong."""
    cases = json.loads((CORPUS_DIR / "gt06.json").read_text())["cases"]
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    mismatched, rejected = [], 0
    for case in cases:
        frame = payload_item(case["payload"])
        options = case_options(case)
        try:
            get_codec("gt06").new_session(options).decode_frame(frame, now)
            accepted = True
        except ProtocolError:
            accepted, rejected = False, rejected + 1
        if accepted != _well_formed(frame):
            mismatched.append(case["id"])
    print(f"\ngt06 strict: {len(cases) - rejected}/{len(cases)} frames accepted, "
          f"{rejected} refused for a bad CRC or length")
    assert not mismatched
