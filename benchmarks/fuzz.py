"""Fuzz every protocol decoder: executions, hangs and exceptions other than ProtocolError.

Run from the repository root::

    python3 benchmarks/fuzz.py [--seconds 60] [--protocol NAME ...] [--engine auto|atheris|random]
    python3 benchmarks/fuzz.py --protocol NAME --repro HEX      # re-run one reported input
    python3 benchmarks/fuzz.py --protocol NAME --repro-file FILE  # ... or one saved with --save

Each protocol is fuzzed for `--seconds` in a subprocess of its own (atheris.Fuzz()
never returns, and a decoder stuck in C code must not take the run with it).

- Engine "atheris" (the default when `import atheris` works): libFuzzer with
  coverage of the `protocols` package, seeded with the protocol's valid frames
  (device side, the test modules' frames, ../shared/corpus when present, see
  `tests/protocols/fuzzing.py`), mutated by libFuzzer and, one time in four, by
  the structure-aware mutations of `fuzzing.mutate` (large numbers written into
  decimal fields, 0xFF.. into binary ones, repeated slices up to the frame cap).
- Engine "random" (the fallback): the same seeds and mutations in a plain loop.

A fuzz input's first byte chooses the entry point (`decode_frame`, `receive_data`
whole or in chunks, `receive_datagram`, `protocols.replay` with frames or stream
bytes; osmand: an `HttpRequest`) and the decoder options (lenient, dialects); the
rest is the payload.  Every input runs under a CPU-time watchdog: one input over
`--hang-seconds` (1 s) of CPU is a hang; any exception other than ProtocolError is
an exception, reported with its type, where it was raised and the hex of the input.
Hard failures that kill the child (a libFuzzer timeout of a call stuck in C code,
out of memory, a crash) are reported from the input libFuzzer saved, or, for the
random engine, from the input the child was running when the parent had to stop it.

Prints one row per protocol (executions, executions/s, hangs, exceptions, seeds,
seconds fuzzed), the findings with a repro command (`--save DIR` writes each
finding's input to DIR/<protocol>-<kind>-<n>.bin, for inputs too long to print as
hex), and a summary line.  Exit status 1 when anything was found, 0 when clean.
Not a pass/fail test: `tests/protocols/test_robustness.py` is the test.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATUS_EVERY_S = 0.25
CURRENT_BYTES = 1 << 20       # room for the input being run (the random engine's crash trail)
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")


def _repo_on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="fuzzing time per protocol (default 60)")
    parser.add_argument("--protocol", action="append", metavar="NAME",
                        help="only this protocol (repeatable; default: all registered)")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto",
                        help="atheris when importable (auto), or the random-mutation loop")
    parser.add_argument("--hang-seconds", type=float, default=1.0,
                        help="CPU time one input may take before it counts as a hang (default 1)")
    parser.add_argument("--max-len", type=int, default=8192,
                        help="largest fuzz input (default 8192 bytes)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="protocols fuzzed at the same time (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--repro", metavar="HEX", help="run one input (hex) on --protocol and report")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--repro-file", metavar="FILE", help="run the input in FILE on --protocol and report")
    parser.add_argument("--save", metavar="DIR", help="write every finding's input to DIR (for --repro-file)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args(argv)
    _repo_on_path()
    if args.child:
        return child_main(args, extra)
    if args.repro is not None or args.repro_file is not None:
        return repro_main(args)
    return parent_main(args)


# =====================================================================================
# Parent: one subprocess per protocol, then the report
# =====================================================================================

def _engine(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "random"
    return "atheris"


def parent_main(args: argparse.Namespace) -> int:
    from protocols import CODECS

    names = args.protocol or sorted(CODECS)
    unknown = [name for name in names if name not in CODECS]
    if unknown:
        print(f"unknown protocol(s): {', '.join(unknown)}; known: {', '.join(sorted(CODECS))}",
              file=sys.stderr)
        return 2
    engine = _engine(args.engine)
    print(f"fuzz: {args.seconds:g} s per protocol, engine {engine}"
          f"{' (libFuzzer, coverage of protocols/)' if engine == 'atheris' else ' (random mutation)'}, "
          f"hang = one input over {args.hang_seconds:g} s CPU, inputs up to {args.max_len} bytes",
          flush=True)
    header = ("protocol", "executions", "exec/s", "hangs", "exceptions", "seeds", "seconds")
    widths = (10, 12, 9, 6, 11, 6, 8)
    print("  ".join(f"{title:>{width}}" for title, width in zip(header, widths, strict=True)), flush=True)
    root = Path(tempfile.mkdtemp(prefix="tracker-fuzz-"))
    results: list[dict[str, Any]] = []
    try:
        pending = list(names)
        running: list[tuple[str, subprocess.Popen[bytes], Path, float]] = []
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                name = pending.pop(0)
                workdir = root / name
                workdir.mkdir()
                running.append((name, _start_child(args, engine, name, workdir), workdir, time.monotonic()))
            time.sleep(0.2)
            for item in list(running):
                name, process, workdir, started = item
                limit = args.seconds + 120 + 30 * args.hang_seconds
                if process.poll() is None and time.monotonic() - started < limit:
                    continue
                killed = False
                if process.poll() is None:      # stuck beyond any fuzzing time: stop it
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    killed = True
                running.remove(item)
                result = collect(name, workdir, process.returncode, killed, args)
                results.append(result)
                row = [name, f"{result['executions']:,}", f"{result['rate']:,.0f}",
                       str(len(result["hangs"])), str(len(result["exceptions"])), str(result["seeds"]),
                       f"{result['elapsed']:.1f}"]
                print("  ".join(f"{cell:>{width}}" for cell, width in zip(row, widths, strict=True)),
                      flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report(results, args)


def _start_child(args: argparse.Namespace, engine: str, name: str, workdir: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--workdir", str(workdir),
               "--seconds", str(args.seconds), "--engine", engine, "--hang-seconds", str(args.hang_seconds),
               "--max-len", str(args.max_len), "--seed", str(args.seed)]
    log = (workdir / "child.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
                            start_new_session=True)


def collect(name: str, workdir: Path, returncode: int | None, killed: bool,
            args: argparse.Namespace) -> dict[str, Any]:
    """A child's counters and findings, plus what a child that died left behind."""
    status: dict[str, Any] = {"executions": 0, "elapsed": 0.0, "seeds": 0}
    if (workdir / "status.json").is_file():
        try:
            status.update(json.loads((workdir / "status.json").read_text()))
        except ValueError:
            pass
    log = (workdir / "child.log").read_text("utf-8", "replace") if (workdir / "child.log").is_file() else ""
    for line in log.splitlines():     # libFuzzer's final figures, when it printed them
        if line.startswith("stat::number_of_executed_units:"):
            status["executions"] = max(status["executions"], int(line.split(":")[-1]))
    findings = []
    if (workdir / "findings.jsonl").is_file():
        findings = [json.loads(line) for line in (workdir / "findings.jsonl").read_text().splitlines()
                    if line.strip()]
    for artifact in sorted(workdir.iterdir()):
        if artifact.name.startswith(ARTIFACT_PREFIXES):
            findings.append(_artifact_finding(name, artifact, args))
    if killed:
        data = _current_input(workdir)
        findings.append({"kind": "hang", "type": "Stuck",
                         "message": "the child did not finish: killed while running this input",
                         "where": "", "input": data.hex(), "count": 1})
    elif returncode not in (0, None) and not any(f.get("artifact") for f in findings):
        data = _current_input(workdir)
        findings.append({"kind": "exception", "type": f"ChildExit({returncode})",
                         "message": "the fuzzing process died; last lines: "
                                    + " | ".join(log.splitlines()[-5:]),
                         "where": "", "input": data.hex(), "count": 1})
    elapsed = float(status.get("elapsed") or 0.0) or args.seconds
    executions = int(status["executions"])
    return {
        "protocol": name, "executions": executions, "rate": executions / elapsed if elapsed else 0.0,
        "elapsed": elapsed, "seeds": int(status.get("seeds") or 0),
        "hangs": [f for f in findings if f["kind"] == "hang"],
        "exceptions": [f for f in findings if f["kind"] == "exception"],
    }


def _current_input(workdir: Path) -> bytes:
    path = workdir / "current.bin"
    if not path.is_file():
        return b""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:4], "little")
    return raw[4:4 + size]


def _artifact_finding(name: str, artifact: Path, args: argparse.Namespace) -> dict[str, Any]:
    """An input libFuzzer saved when the child died: re-run it in a fresh
    process to name the failure."""
    data = artifact.read_bytes()
    kind = "hang" if artifact.name.startswith(("timeout-", "slow-unit-")) else "exception"
    finding = {"kind": kind, "type": artifact.name.split("-", 1)[0], "where": "",
               "message": f"libFuzzer saved {artifact.name}", "input": data.hex(), "count": 1,
               "artifact": artifact.name}
    command = [sys.executable, str(Path(__file__).resolve()), "--protocol", name, "--repro-file",
               str(artifact), "--json", "--hang-seconds", str(args.hang_seconds)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60 + 10 * args.hang_seconds,
                              cwd=str(REPO), check=False)
        outcome = json.loads(done.stdout.decode().strip().splitlines()[-1])
        if outcome.get("type"):
            finding.update(type=outcome["type"], message=outcome["message"], where=outcome["where"])
            finding["kind"] = "hang" if outcome["type"] == "Hang" else "exception"
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        finding["message"] += " (re-run did not finish: a hang)"
        finding["kind"] = "hang"
    return finding


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> int:
    hangs = sum(len(r["hangs"]) for r in results)
    exceptions = sum(len(r["exceptions"]) for r in results)
    save = Path(args.save) if args.save else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    for result in results:
        for number, finding in enumerate(result["hangs"] + result["exceptions"], start=1):
            data = bytes.fromhex(finding["input"])
            saved = None
            if save is not None:
                saved = save / f"{result['protocol']}-{finding['kind']}-{number}.bin"
                saved.write_bytes(data)
            shown = finding["input"] if len(data) <= 512 else finding["input"][:1024] + "..."
            print(f"\n{result['protocol']}: {finding['kind'].upper()} {finding['type']}: {finding['message']}"
                  f"{' at ' + finding['where'] if finding['where'] else ''} (seen {finding['count']}x)")
            print(f"  input ({len(data)} bytes, first byte = entry/options selector): {shown}")
            if saved is not None:
                print(f"  repro: python3 benchmarks/fuzz.py --protocol {result['protocol']} "
                      f"--repro-file {saved}")
            elif len(data) <= 512:
                print(f"  repro: python3 benchmarks/fuzz.py --protocol {result['protocol']} "
                      f"--repro {finding['input']}")
    total = sum(r["executions"] for r in results)
    seconds = sum(r["elapsed"] for r in results)
    verdict = "clean" if not hangs and not exceptions else "FOUND PROBLEMS"
    print(f"\nsummary: {len(results)} protocols, {total:,} executions in {seconds:,.0f} s "
          f"({total / seconds if seconds else 0:,.0f}/s), {hangs} hangs, {exceptions} exceptions "
          f"other than ProtocolError: {verdict}")
    return 0 if not hangs and not exceptions else 1


# =====================================================================================
# Child: fuzz one protocol, write counters and findings to the workdir
# =====================================================================================

class Recorder:
    """Counts executions, keeps the first input of every distinct finding (by
    exception type and the place it was raised), writes status and findings."""

    def __init__(self, workdir: Path, hang_seconds: float, seeds: int) -> None:
        self.workdir = workdir
        self.hang_seconds = hang_seconds
        self.executions = 0
        self.started = time.monotonic()
        self.seeds = seeds
        self._last_status = 0.0
        self._seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        current = (workdir / "current.bin").open("w+b")
        current.truncate(CURRENT_BYTES + 4)
        self._current = mmap.mmap(current.fileno(), CURRENT_BYTES + 4)

    def running(self, data: bytes) -> None:
        """Note the input about to run (read by the parent if the child dies)."""
        size = min(len(data), CURRENT_BYTES)
        self._current[:4] = size.to_bytes(4, "little")
        self._current[4:4 + size] = data[:size]

    def finished(self, data: bytes, error: BaseException | None, cpu_s: float) -> None:
        self.executions += 1
        from protocols import ProtocolError
        from tests.protocols.fuzzing import Hang

        if error is None or isinstance(error, ProtocolError):
            if cpu_s > self.hang_seconds:
                self._finding("hang", "Hang", f"{cpu_s:.2f} s CPU (not interruptible)", "", data)
        elif isinstance(error, Hang):
            self._finding("hang", "Hang", f"over {self.hang_seconds:g} s CPU", _where(error), data)
        else:
            self._finding("exception", type(error).__name__, str(error)[:300], _where(error), data)
        now = time.monotonic()
        if now - self._last_status >= STATUS_EVERY_S:
            self.write_status()

    def _finding(self, kind: str, name: str, message: str, where: str, data: bytes) -> None:
        key = (kind, name, where)
        if key in self._seen:
            self._seen[key]["count"] += 1
            return
        finding = {"kind": kind, "type": name, "message": message, "where": where,
                   "input": data.hex(), "count": 1}
        self._seen[key] = finding
        with (self.workdir / "findings.jsonl").open("a") as handle:
            handle.write(json.dumps(finding) + "\n")
        self.write_status()

    def write_status(self) -> None:
        self._last_status = time.monotonic()
        counts = {f"{k[0]}:{k[1]}:{k[2]}": v["count"] for k, v in self._seen.items()}
        status = {"executions": self.executions, "elapsed": self._last_status - self.started,
                  "seeds": self.seeds, "counts": counts}
        temporary = self.workdir / "status.tmp"
        temporary.write_text(json.dumps(status))
        temporary.replace(self.workdir / "status.json")


def _where(error: BaseException) -> str:
    """file:line of the innermost frame in the project (protocols/ first)."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        if "/protocols/" in frame.filename and "/tests/" not in frame.filename:
            return f"{Path(frame.filename).relative_to(REPO)}:{frame.lineno} ({frame.name})"
    if frames:
        frame = frames[-1]
        return f"{frame.filename}:{frame.lineno} ({frame.name})"
    return ""


def _one(recorder: Recorder, name: str, data: bytes) -> None:
    """Run one input under the watchdog and record what happened."""
    from tests.protocols.fuzzing import run_input

    recorder.running(data)
    error: BaseException | None = None
    start = time.process_time()
    signal.setitimer(signal.ITIMER_VIRTUAL, recorder.hang_seconds)
    try:
        run_input(name, data)
    except Exception as exc:   # every kind is a finding, except ProtocolError (sorted by finished)
        error = exc
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    recorder.finished(data, error, time.process_time() - start)


def _install_watchdog() -> None:
    from tests.protocols.fuzzing import Hang

    def expired(_signum: int, _frame: object) -> None:
        raise Hang("input exceeded the CPU bound")
    signal.signal(signal.SIGVTALRM, expired)


def child_main(args: argparse.Namespace, extra: list[str]) -> int:
    name, workdir = args.child, Path(args.workdir)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
    if args.engine == "atheris":
        return _child_atheris(name, workdir, args)
    return _child_random(name, workdir, args)


def _child_random(name: str, workdir: Path, args: argparse.Namespace) -> int:
    from tests.protocols.fuzzing import mutate_input, seed_inputs

    seeds = seed_inputs(name)
    recorder = Recorder(workdir, args.hang_seconds, len(seeds))
    _install_watchdog()
    rng = random.Random(f"{args.seed}:{name}")
    deadline = time.monotonic() + args.seconds
    for data in seeds:
        _one(recorder, name, data)
    while time.monotonic() < deadline:
        if rng.random() < 0.05:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 512)))
        else:
            data = mutate_input(rng, rng.choice(seeds), args.max_len)
        _one(recorder, name, data)
    recorder.write_status()
    return 0


def _child_atheris(name: str, workdir: Path, args: argparse.Namespace) -> int:
    import atheris

    with atheris.instrument_imports(include=["protocols"]):
        import protocols  # noqa: F401
        from protocols import registry  # noqa: F401  (imports every codec module)
    from tests.protocols.fuzzing import mutate_input, seed_inputs

    corpus = workdir / "corpus"
    corpus.mkdir()
    seeds = seed_inputs(name)
    for index, data in enumerate(seeds):
        (corpus / f"seed-{index:05d}").write_bytes(data[:args.max_len])
    recorder = Recorder(workdir, args.hang_seconds, len(seeds))
    _install_watchdog()

    def test_one_input(data: bytes) -> None:
        _one(recorder, name, data)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.25 and data and max_size > 1:
            return mutate_input(rng, data, max_size - 1)   # the limit is the payload's
        return atheris.Mutate(data, max_size)

    argv = [sys.argv[0], str(corpus), f"-max_total_time={max(1, round(args.seconds))}",
            f"-timeout={max(10, round(10 * args.hang_seconds))}", "-rss_limit_mb=2048",
            f"-max_len={args.max_len}", f"-artifact_prefix={workdir}/", f"-seed={args.seed or 1}",
            "-print_final_stats=1"]
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()
    return 0   # not reached: libFuzzer exits the process


# =====================================================================================
# Repro: one input, in this process
# =====================================================================================

def repro_main(args: argparse.Namespace) -> int:
    from protocols import ProtocolError
    from tests.protocols.fuzzing import Hang, decode_input, run_case, watchdog

    if not args.protocol or len(args.protocol) != 1:
        print("--repro needs exactly one --protocol", file=sys.stderr)
        return 2
    name = args.protocol[0]
    data = Path(args.repro_file).read_bytes() if args.repro_file else bytes.fromhex(args.repro)
    case = decode_input(name, data)
    outcome = {"type": "", "message": "", "where": ""}
    start = time.process_time()
    try:
        watchdog(max(args.hang_seconds, 1.0) * 5, lambda: run_case(case))
        message = "returned"
    except ProtocolError as error:
        message = f"ProtocolError: {error}"
    except Hang as error:
        outcome = {"type": "Hang", "message": str(error), "where": _where(error)}
        message = "HANG"
        if not args.json:
            traceback.print_exc()
    except Exception as error:  # report it, whatever it is
        outcome = {"type": type(error).__name__, "message": str(error)[:300], "where": _where(error)}
        message = "EXCEPTION"
        if not args.json:
            traceback.print_exc()
    elapsed = time.process_time() - start
    if args.json:
        print(json.dumps(outcome))
    else:
        print(f"{name}: {case.describe()}, payload {len(case.payload)} bytes: {message} "
              f"({elapsed * 1000:.1f} ms CPU)")
    return 0 if not outcome["type"] else 1


if __name__ == "__main__":
    sys.exit(main())
