"""ZoneIndex: containing (edge counts as inside), crossed, and agreement with brute force."""

from __future__ import annotations

import random

import pytest
import shapely

from geofence.index import ZoneIndex
from geofence.zones import circle, from_geojson, from_wkt


def _square(zone_id, x0, y0, x1, y1):
    return from_wkt(f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))", zone_id)


def test_containing_finds_overlapping_zones_and_nothing_outside():
    index = ZoneIndex([_square("a", 0, 0, 2, 2), _square("b", 1, 1, 3, 3), circle("c", "", 10, 10, 1000)])
    assert index.containing(1.5, 1.5) == {"a", "b"}
    assert index.containing(0.5, 0.5) == {"a"}
    assert index.containing(10, 10) == {"c"}
    assert index.containing(5, 5) == frozenset()
    assert len(index) == 3


def test_point_on_edge_or_vertex_counts_as_inside():
    index = ZoneIndex([_square(1, 0, 0, 2, 2)])
    assert index.containing(2, 1) == {1}
    assert index.containing(0, 0) == {1}
    assert index.containing(2.000001, 1) == frozenset()


def test_point_in_hole_is_outside():
    index = ZoneIndex([from_geojson({"type": "Polygon", "coordinates": [
        [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]]}, 1)])
    assert index.containing(5, 5) == frozenset()
    assert index.containing(2, 2) == {1}


def test_antimeridian_zone_holds_both_sides_in_the_index():
    index = ZoneIndex([from_geojson({"type": "Polygon", "coordinates": [
        [[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]]}, "dateline")])
    assert index.containing(179.9, 0) == {"dateline"}
    assert index.containing(-179.9, 0) == {"dateline"}
    assert index.containing(0, 0) == frozenset()


def test_crossed_sees_a_small_zone_jumped_over_by_a_fast_mover():
    index = ZoneIndex([_square("small", 1, -0.1, 1.1, 0.1), _square("far", 5, 5, 6, 6)])
    assert index.containing(0, 0) == frozenset() and index.containing(2, 0) == frozenset()
    assert index.crossed(0, 0, 2, 0) == {"small"}
    assert index.crossed(0, 1, 2, 1) == frozenset()
    assert index.crossed(1.05, 0, 1.05, 0) == {"small"}


def test_crossed_takes_the_short_way_over_the_antimeridian():
    index = ZoneIndex([_square("east", 179.5, -1, 179.8, 1), _square("mid", -10, -1, 10, 1)])
    assert index.crossed(179, 0, -179, 0) == {"east"}
    assert index.crossed(-179, 0, 179, 0) == {"east"}


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="unique"):
        ZoneIndex([_square(1, 0, 0, 1, 1), _square(1, 2, 2, 3, 3)])


def _random_zones(rng: random.Random, count: int):
    zones = []
    for number in range(count):
        lon, lat = rng.uniform(5, 15), rng.uniform(45, 55)
        if number % 2:
            zones.append(circle(number, "", lon, lat, rng.uniform(100, 80_000)))
        else:
            w, h = rng.uniform(0.01, 1), rng.uniform(0.01, 1)
            zones.append(_square(number, round(lon, 3), round(lat, 3), round(lon + w, 3), round(lat + h, 3)))
    return zones


def test_index_agrees_with_brute_force_on_random_points():
    rng = random.Random(20240601)
    zones = _random_zones(rng, 300)
    index = ZoneIndex(zones)
    points = [(rng.uniform(4, 16), rng.uniform(44, 56)) for _ in range(3000)]
    points += [zone.geometry.exterior.coords[0] for zone in zones]  # vertices: on the edge
    for lon, lat in points:
        point = shapely.Point(lon, lat)
        expected = frozenset(zone.id for zone in zones if zone.geometry.covers(point))
        assert index.containing(lon, lat) == expected, (lon, lat)


def test_crossed_agrees_with_brute_force_on_random_segments():
    rng = random.Random(7)
    zones = _random_zones(rng, 200)
    index = ZoneIndex(zones)
    for _ in range(500):
        lon1, lon2 = rng.uniform(4, 16), rng.uniform(4, 16)
        lat1, lat2 = rng.uniform(44, 56), rng.uniform(44, 56)
        segment = shapely.LineString([(lon1, lat1), (lon2, lat2)])
        expected = frozenset(zone.id for zone in zones if zone.geometry.intersects(segment))
        assert index.crossed(lon1, lat1, lon2, lat2) == expected
