"""How long the periodic rule tick holds the reactor, with 10,000 devices.

Run from the repository root::

    python3 benchmarks/rule_tick.py [--devices 10000] [--rounds 5]

Builds a RuleService with `--devices` devices (one live fix each, status timeout
60 s), advances the clock past the timeout (every device turns unknown: the most
work a tick can have) and runs the tick one cooperative slice per "reactor turn",
timing each slice in CPU time.  Prints the median and longest slice (ms), with and
without `gc.freeze()` (which `TrackerServer.start` calls once the device states are
loaded, so that collections of the oldest generation do not walk them: without it a
slice that triggers one takes 50-70 ms); the hardening target is no slice over
50 ms.  Baseline in the same run: the same work in one step (`TICK_SLICE_DEVICES` =
all devices), what a tick without slicing would hold the reactor for.  Exit 1 when
the target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet import task  # noqa: E402

from protocols import Position  # noqa: E402
from tests.tracker.doubles import FakeReactor, rule_config  # noqa: E402
from tracker import rules as rules_module  # noqa: E402
from tracker.models import Device  # noqa: E402
from tracker.pipeline import build_batch  # noqa: E402
from tracker.rules import RuleService, profile_defaults  # noqa: E402

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


class Sink:
    def __call__(self, batch):
        return None


def one_tick(devices: int, *, freeze: bool = False) -> list[float]:
    """Seconds of each slice of one tick over `devices` devices."""
    reactor = FakeReactor()
    reactor.advance(NOW.timestamp())
    steps: list = []
    cooperator = task.Cooperator(scheduler=steps.append,
                                 terminationPredicateFactory=lambda: lambda: True)
    fleet = [Device(id=i, unique_id=f"{i:015d}", name=f"van {i}", organisation_id=1)
             for i in range(1, devices + 1)]
    service = RuleService(store=None, reactor=reactor, threadpool=None, cooperator=cooperator,
                          defaults=profile_defaults({"status_timeout_s": 60}))
    service.use(rule_config(devices=tuple(fleet)))
    service._submit = Sink()
    for van in fleet:
        build_batch(van, "osmand", [Position(fix_time=NOW, valid=True, latitude=52.0,
                                             longitude=13.0)], service, NOW)
    reactor.advance(120)
    if freeze:
        gc.freeze()        # as TrackerServer.start does once the states are loaded
    service.tick()
    slices = []
    while steps:
        started = time.process_time()
        steps.pop(0)()
        slices.append(time.process_time() - started)
    if freeze:
        gc.unfreeze()
    return slices


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"devices {args.devices}, slice size {rules_module.TICK_SLICE_DEVICES}, "
          f"{args.rounds} ticks each; slice times in CPU ms (time.process_time: other "
          "processes on the machine do not count)")
    longest = 0.0
    for label, freeze in (("as the server runs (gc.freeze() after loading)", True),
                          ("without gc.freeze()", False)):
        every = sorted(x * 1000 for _ in range(args.rounds)
                       for x in one_tick(args.devices, freeze=freeze))
        over = sum(1 for x in every if x > 50)
        print(f"{label}: median slice {statistics.median(every):.1f} ms, longest "
              f"{every[-1]:.1f} ms, {over} of {len(every)} slices over 50 ms")
        if freeze:
            longest = every[-1]
    original = rules_module.TICK_SLICE_DEVICES
    rules_module.TICK_SLICE_DEVICES = args.devices
    try:
        unsliced = [max(one_tick(args.devices, freeze=True)) * 1000 for _ in range(args.rounds)]
    finally:
        rules_module.TICK_SLICE_DEVICES = original
    print(f"baseline, the tick in one step: reactor held {statistics.median(unsliced):.0f} ms")
    print("target: no slice over 50 ms:", "PASS" if longest <= 50 else "FAIL")
    return 0 if longest <= 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
