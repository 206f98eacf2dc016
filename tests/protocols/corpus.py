"""Run a protocol's conformance corpus through `protocols.replay` and judge it.

Generic over protocols: `run_corpus("gt06", path)` replays every case of one
corpus file (see ../shared/corpus/README.md) and returns a `CorpusReport`
with two figures:

- pass: the case's own verdict (`kind` / `expect`), as the corpus README
  defines it;
- reference: field-by-field agreement with what Traccar decoded (`reference`):
  fixTime, valid, latitude/longitude (1e-5), altitude, speed (0.01 kn),
  course, attributes (same keys, same types: int is not float), outdated.

The corpus frames come from Traccar's test suite (Apache-2.0,
https://github.com/traccar/traccar); this module only reads them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from protocols import HttpRequest, ProtocolError, replay

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)   # about when the references were made
"""Fixed replay time, about when the references were made: later than every capture
(so "before now + 25 h" holds) and the date the time-of-day-only protocols assume."""

_PLAUSIBLE_SINCE = dt.datetime(1999, 1, 1, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class CaseResult:
    """Verdicts for one case; reasons are empty when the check passed."""

    case_id: str
    passed: bool
    reason: str
    reference_ok: bool
    reference_reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class CorpusReport:
    """All verdicts of one corpus run."""

    protocol: str
    results: tuple[CaseResult, ...]

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def reference_matched(self) -> int:
        return sum(r.reference_ok for r in self.results)

    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def reference_rate(self) -> float:
        return self.reference_matched / self.total if self.total else 0.0

    def summary(self, known: Mapping[str, str] | None = None) -> str:
        """The figures line plus every failing case with its reason.
        `known` maps case ids to documented, deliberate deviations."""
        known = known or {}
        lines = [f"{self.protocol}: pass {self.passed}/{self.total} ({100 * self.pass_rate():.1f}%), "
                 f"reference {self.reference_matched}/{self.total} "
                 f"({100 * self.reference_rate():.1f}%)"]
        for r in self.results:
            note = f"  [deliberate: {known[r.case_id]}]" if r.case_id in known else ""
            if not r.passed:
                lines.append(f"  FAIL {r.case_id}: {r.reason}{note}")
            if not r.reference_ok:
                lines.append(f"  REF  {r.case_id}: {r.reference_reason}{note}")
        return "\n".join(lines)


def load_corpus(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def payload_item(payload: Mapping[str, Any]) -> Any:
    """A case payload as `replay` takes it: bytes, or an HttpRequest."""
    kind = payload["type"]
    if kind == "binary":
        return bytes.fromhex(payload["hex"])
    if kind == "text":
        if "hex" in payload:
            return bytes.fromhex(payload["hex"])
        try:
            return payload["text"].encode("latin-1")
        except UnicodeEncodeError:   # beyond ISO-8859-1 and no "hex" (wialon-21): as UTF-8
            return payload["text"].encode("utf-8")
    if kind == "http":
        return HttpRequest(method=payload["method"], url=payload["url"],
                           headers=dict(payload.get("headers") or {}),
                           body=bytes.fromhex(payload.get("body_hex") or ""))
    raise ValueError(f"unknown payload type {kind!r}")


def case_options(case: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Decoder settings of a case (its `decoder_config.settings`) over `base`."""
    options = dict(base or {})
    config = case.get("decoder_config") or {}
    options.update(config.get("settings") or {})
    return options


def run_case(protocol: str, case: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]],
             base_options: Mapping[str, Any] | None = None, now: dt.datetime = NOW) -> CaseResult:
    """Replay the case's `after` frames and its own frame on one session.

    An earlier frame the decoder rejects (with this case's options, an older
    capture may not parse) is skipped, as Traccar's pipeline drops it; a
    rejected case frame fails the case."""
    frames = [payload_item(by_id[earlier]["payload"]) for earlier in case.get("after", ())]
    frames.append(payload_item(case["payload"]))
    failures: dict[int, ProtocolError] = {}
    records = replay(protocol, frames, case_options(case, base_options), now=now,
                     errors=failures.__setitem__)[-1]
    if len(frames) - 1 in failures:
        reason = f"ProtocolError: {failures[len(frames) - 1]}"
        return CaseResult(case["id"], False, reason, False, reason)
    ok, reason = judge(case, records, now)
    reference = case.get("reference") or []
    if case.get("reference_time_dependent"):   # Traccar's fixTime there is its run's clock
        reference = [{k: v for k, v in r.items() if k not in ("fixTime", "deviceTime")} for r in reference]
    ref_ok, ref_reason = compare_reference(reference, records)
    return CaseResult(case["id"], ok, reason, ref_ok, ref_reason)


def run_corpus(protocol: str, path: Path, base_options: Mapping[str, Any] | None = None,
               now: dt.datetime = NOW) -> CorpusReport:
    corpus = load_corpus(path)
    cases = corpus["cases"]
    by_id = {case["id"]: case for case in cases}
    results = tuple(run_case(protocol, case, by_id, base_options, now) for case in cases)
    return CorpusReport(protocol, results)


# --------------------------------------------------------------------------
# The case verdict (kind / expect)
# --------------------------------------------------------------------------

def judge(case: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
          now: dt.datetime) -> tuple[bool, str]:
    """(passed, reason) for the records decoded from the case's own frame."""
    kind, expect = case["kind"], case.get("expect") or {}
    if kind == "null":
        return (not records, f"expected no record, got {len(records)}")
    if not records:
        return False, "expected a record, got none"
    first = records[0]
    if kind == "notnull":
        return True, ""
    if kind == "position":
        reason = implausible(first, now) or _expect_mismatch(first, expect)
        return not reason, reason
    if kind == "positions":
        reasons = [implausible(r, now) for r in records]
        reason = "; ".join(r for r in reasons if r)
        return not reason, reason
    if kind == "attributes":
        return bool(first["attributes"]), "empty attribute map"
    if kind == "attribute":
        return _attribute_verdict(first, expect)
    return False, f"unknown kind {kind!r}"


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def implausible(record: Mapping[str, Any], now: dt.datetime) -> str:
    """Why a record fails the README's plausibility check ("" if it passes)."""
    problems = []
    fix_time = _time(record["fixTime"])
    if not _PLAUSIBLE_SINCE < fix_time < now + dt.timedelta(hours=25):
        problems.append(f"fixTime {record['fixTime']}")
    if not -90 <= record["latitude"] <= 90 or not -180 <= record["longitude"] <= 180:
        problems.append(f"position {record['latitude']},{record['longitude']}")
    if not -12262 <= record["altitude"] <= 18000:
        problems.append(f"altitude {record['altitude']}")
    if not 0 <= record["speed"] <= 869:
        problems.append(f"speed {record['speed']}")
    if not 0 <= record["course"] <= 360:
        problems.append(f"course {record['course']}")
    if not record.get("protocol"):
        problems.append("no protocol")
    return ", ".join(problems)


def _expect_mismatch(record: Mapping[str, Any], expect: Mapping[str, Any]) -> str:
    if not expect:
        return ""
    problems = []
    tolerance = expect.get("tolerance", 1e-5)
    if "time" in expect and _time(record["fixTime"]) != _time(expect["time"]):
        problems.append(f"time {record['fixTime']} != {expect['time']}")
    if "valid" in expect and record["valid"] != expect["valid"]:
        problems.append(f"valid {record['valid']}")
    for key in ("latitude", "longitude"):
        if key in expect and abs(record[key] - expect[key]) > tolerance:
            problems.append(f"{key} {record[key]} != {expect[key]}")
    return ", ".join(problems)


_JAVA_TYPES = {"int": int, "long": int, "double": float, "boolean": bool, "String": str}


def _attribute_verdict(record: Mapping[str, Any], expect: Mapping[str, Any]) -> tuple[bool, str]:
    key, target = expect["key"], expect.get("target", "attributes")
    if target == "attributes":
        present, value = key in record["attributes"], record["attributes"].get(key)
    else:
        field = target.split(".", 1)[-1]
        present, value = field in record, record.get(field)
    wanted, kind = expect.get("value"), expect.get("value_type")
    if kind == "null" or wanted is None:
        return value is None, f"{key} = {value!r}, expected none"
    if not present:
        return False, f"{key} missing, expected {wanted!r}"
    if target != "attributes" and isinstance(wanted, (int, float)):
        return math.isclose(value, wanted, abs_tol=1e-6), f"{key} = {value!r}, expected {wanted!r}"
    return _same_value(value, wanted, _JAVA_TYPES.get(kind)), \
        f"{key} = {value!r}, expected {wanted!r} ({kind})"


def _same_value(value: Any, wanted: Any, kind: type | None = None) -> bool:
    """Equal and of the same JSON type (bool, int, float and str differ)."""
    kind = kind or type(wanted)
    if type(value) is not kind:
        return False
    if kind is float:
        return math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-9)
    return value == wanted


# --------------------------------------------------------------------------
# The reference comparison
# --------------------------------------------------------------------------

def compare_reference(reference: Sequence[Mapping[str, Any]],
                      records: Sequence[Mapping[str, Any]]) -> tuple[bool, str]:
    """(matches, first difference) between Traccar's records and ours."""
    if len(reference) != len(records):
        return False, f"{len(records)} records, reference has {len(reference)}"
    for index, (ref, ours) in enumerate(zip(reference, records, strict=True)):
        reason = _record_difference(ref, ours)
        if reason:
            return False, f"record {index}: {reason}"
    return True, ""


def _record_difference(ref: Mapping[str, Any], ours: Mapping[str, Any]) -> str:
    problems = []
    if "fixTime" in ref and _time(ours["fixTime"]) != _time(ref["fixTime"]):
        problems.append(f"fixTime {ours['fixTime']} != {ref['fixTime']}")
    if ours["valid"] != ref["valid"]:
        problems.append(f"valid {ours['valid']}")
    for key, tolerance in (("latitude", 1e-5), ("longitude", 1e-5), ("altitude", 1e-6),
                           ("speed", 0.01), ("course", 1e-6)):
        if abs(ours[key] - ref[key]) > tolerance:
            problems.append(f"{key} {ours[key]} != {ref[key]}")
    if bool(ours.get("outdated")) != bool(ref.get("outdated")):
        problems.append(f"outdated {bool(ours.get('outdated'))}")
    problems.extend(_attribute_differences(ref["attributes"], ours["attributes"]))
    return "; ".join(problems)


def _attribute_differences(ref: Mapping[str, Any], ours: Mapping[str, Any]) -> list[str]:
    problems = [f"missing {k}={ref[k]!r}" for k in ref if k not in ours]
    problems += [f"extra {k}={ours[k]!r}" for k in ours if k not in ref]
    problems += [f"{k}={ours[k]!r} != {ref[k]!r}" for k in ref
                 if k in ours and not _same_value(ours[k], ref[k])]
    return problems
