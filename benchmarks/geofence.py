"""Geofence benchmark: ZoneIndex.containing checks per second on one core.

Run from the repository root::

    python3 benchmarks/geofence.py [--zones 10000] [--checks 100000] [--seed 1]

Builds `--zones` random zones over a country-sized area (lon 5..15, lat 45..55, about
Germany), alternately geodesic circles (50 m .. 5 km) and polygons (random convex
8-gons, 100 m .. 10 km across), then indexes them with `ZoneIndex` and times
`--checks` random positions over the same area through `containing`, one at a time.
Prints zone build time, index build time, checks per second (target >= 50,000) and
the mean number of zones per position.  Then the whole rule engine: `--devices`
devices, every one assigned all the zones, each driving a random walk (fixes 10 s
apart, 0..90 km/h) through `Engine.fix` with a speed limit, motion and idle rules on:
fixes per second and events produced.  Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datetime as dt  # noqa: E402
import zoneinfo  # noqa: E402

from geofence import ZoneIndex, circle, polygon  # noqa: E402
from geofence.engine import DeviceContext, DeviceState, Engine, Fix, Profile, ZoneRule  # noqa: E402

WEST, EAST, SOUTH, NORTH = 5.0, 15.0, 45.0, 55.0


def _zones(rng: random.Random, count: int):
    zones = []
    for number in range(count):
        lon, lat = rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)
        if number % 2:
            zones.append(circle(number, f"circle {number}", lon, lat, rng.uniform(50, 5_000)))
        else:
            radius_deg = rng.uniform(0.0005, 0.05)
            angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(8))
            ring = [(lon + radius_deg * math.cos(a) / math.cos(math.radians(lat)),
                     lat + radius_deg * math.sin(a)) for a in angles]
            zones.append(polygon(number, f"polygon {number}", [[ring + ring[:1]]]))
    return zones


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--fixes", type=int, default=50_000, help="engine fixes in all")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    start = time.perf_counter()
    zones = _zones(rng, args.zones)
    built = time.perf_counter()
    index = ZoneIndex(zones)
    indexed = time.perf_counter()
    points = [(rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)) for _ in range(args.checks)]

    containing = index.containing
    hits = 0
    start_checks = time.perf_counter()
    for lon, lat in points:
        hits += len(containing(lon, lat))
    elapsed = time.perf_counter() - start_checks

    print(f"zones:            {args.zones:,} circles and polygons, "
          f"lon {WEST}..{EAST}, lat {SOUTH}..{NORTH}")
    print(f"zone build:       {built - start:.2f} s")
    print(f"index build:      {(indexed - built) * 1000:.1f} ms")
    print(f"checks:           {args.checks:,} in {elapsed:.2f} s")
    print(f"checks/s:         {args.checks / elapsed:,.0f} (target >= 50,000)")
    print(f"us/check:         {elapsed / args.checks * 1e6:.2f}")
    print(f"zones per check:  {hits / args.checks:.3f}")
    _engine(rng, zones, args.devices, args.fixes)


def _engine(rng: random.Random, zones, devices: int, fixes: int) -> None:
    engine = Engine([ZoneRule(zone) for zone in zones])
    profile = Profile(speed_limit_kn=43.0)
    zone_ids = frozenset(zone.id for zone in zones)
    utc = zoneinfo.ZoneInfo("UTC")
    contexts = [DeviceContext(i, 1, f"d{i}", None, zone_ids, profile, utc) for i in range(devices)]
    states = [DeviceState() for _ in range(devices)]
    places = [[rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)] for _ in range(devices)]
    start_time = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    reports = []
    for step in range(fixes // devices):
        for device in range(devices):
            place = places[device]
            place[0] += rng.uniform(-0.01, 0.01)
            place[1] += rng.uniform(-0.006, 0.006)
            time_ = start_time + dt.timedelta(seconds=10 * step)
            reports.append((device, Fix(time_, place[0], place[1], rng.uniform(0, 50))))
    events = 0
    began = time.perf_counter()
    for device, fix in reports:
        events += len(engine.fix(contexts[device], states[device], fix, fix.time))
    elapsed = time.perf_counter() - began
    print(f"engine:           {len(reports):,} fixes of {devices} devices in {elapsed:.2f} s, "
          f"all {len(zones):,} zones assigned to each")
    print(f"engine fixes/s:   {len(reports) / elapsed:,.0f}")
    print(f"events:           {events:,}")


if __name__ == "__main__":
    main()
