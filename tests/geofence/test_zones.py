"""Zones: geodesic circles, polygons with holes, corridors, antimeridian, parsers, errors."""

from __future__ import annotations

import pytest
import shapely

from geofence.zones import (
    GEOD,
    Zone,
    ZoneError,
    circle,
    corridor,
    from_geojson,
    from_traccar_area,
    from_wkt,
    polygon,
)


def _at(lon: float, lat: float, azimuth: float, distance_m: float) -> shapely.Point:
    """The point `distance_m` from (lon, lat) along `azimuth`, measured with Geod."""
    x, y, _ = GEOD.fwd(lon, lat, azimuth, distance_m)
    return shapely.Point(x, y)


def _assert_radius(zone: Zone, lon: float, lat: float, radius_m: float) -> None:
    for azimuth in range(0, 360, 7):  # 7 degrees: never on a vertex only
        assert zone.geometry.covers(_at(lon, lat, azimuth, radius_m * 0.99)), azimuth
        assert not zone.geometry.covers(_at(lon, lat, azimuth, radius_m * 1.01)), azimuth


@pytest.mark.parametrize("lat", [0.0, 80.0, -45.0])
def test_circle_radius_is_geodesic_at_equator_and_high_latitude(lat):
    zone = circle(1, "c", 12.5, lat, 5_000)
    assert zone.kind == "circle" and zone.radius_m == 5_000
    _assert_radius(zone, 12.5, lat, 5_000)


def test_tiny_one_metre_circle():
    zone = circle(1, "tiny", 2.35, 48.85, 1.0)
    _assert_radius(zone, 2.35, 48.85, 1.0)


def test_huge_900_km_circle():
    zone = circle(1, "huge", 10.0, 50.0, 900_000)
    _assert_radius(zone, 10.0, 50.0, 900_000)


def test_circle_vertices_are_within_half_a_percent_of_the_radius():
    zone = circle(1, "c", 0.0, 60.0, 10_000)
    boundary = zone.geometry.exterior
    # midpoints of the edges are the vertices nearest to the centre
    coords = list(boundary.coords)
    for (x1, y1), (x2, y2) in zip(coords, coords[1:], strict=False):
        distance = GEOD.inv(0.0, 60.0, (x1 + x2) / 2, (y1 + y2) / 2)[2]
        assert abs(distance - 10_000) < 50


def test_polygon_with_hole_excludes_the_hole():
    zone = from_geojson({"type": "Polygon", "coordinates": [
        [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
        [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]],
    ]}, 1, "donut")
    assert zone.kind == "polygon" and zone.name == "donut"
    assert zone.geometry.covers(shapely.Point(2, 2))
    assert not zone.geometry.covers(shapely.Point(5, 5))
    assert zone.geometry.covers(shapely.Point(4, 5)), "hole edge belongs to the zone"


def test_edge_point_is_covered_but_not_contained():
    """Documented semantics: the index uses covers; contains would leave out the edge."""
    zone = from_wkt("POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0))", 1)
    edge = shapely.Point(10, 5)
    assert zone.geometry.covers(edge)
    assert not zone.geometry.contains(edge)


def test_multipolygon_feature_takes_id_and_name():
    zone = from_geojson({"type": "Feature", "id": 42, "properties": {"name": "two"}, "geometry": {
        "type": "MultiPolygon", "coordinates": [
            [[[0, 0], [1, 0], [1, 1], [0, 0]]],
            [[[5, 5], [6, 5], [6, 6], [5, 5]]],
        ]}})
    assert (zone.id, zone.name, zone.geometry.geom_type) == (42, "two", "MultiPolygon")


def test_geojson_point_with_radius_is_a_circle_and_json_text_is_accepted():
    zone = from_geojson('{"type": "Feature", "id": "depot", "properties": {"radius_m": 200},'
                        ' "geometry": {"type": "Point", "coordinates": [13.4, 52.5]}}')
    assert zone.kind == "circle" and zone.id == "depot"
    _assert_radius(zone, 13.4, 52.5, 200)


@pytest.mark.parametrize("make", [
    lambda: from_geojson({"type": "LineString", "coordinates": [[8.0, 47.0], [8.1, 47.0], [8.1, 47.1]]},
                         1, width_m=100),
    lambda: from_wkt("LINESTRING (8.0 47.0, 8.1 47.0, 8.1 47.1)", 1, width_m=100),
    lambda: from_traccar_area("LINESTRING (47.0 8.0, 47.0 8.1, 47.1 8.1)", 1, width_m=100),
])
def test_corridor_is_half_its_width_either_side(make):
    zone = make()
    assert zone.kind == "corridor" and zone.width_m == 100
    # on the first (east-going) segment, north and south of the line
    for azimuth in (0, 180):
        assert zone.geometry.covers(_at(8.05, 47.0, azimuth, 49.0))
        assert not zone.geometry.covers(_at(8.05, 47.0, azimuth, 51.0))
    # on the second (north-going) segment, east and west
    for azimuth in (90, 270):
        assert zone.geometry.covers(_at(8.1, 47.05, azimuth, 49.0))
        assert not zone.geometry.covers(_at(8.1, 47.05, azimuth, 51.0))
    # round cap beyond the start
    assert zone.geometry.covers(_at(8.0, 47.0, 270, 49.0))
    assert not zone.geometry.covers(_at(8.0, 47.0, 270, 51.0))


def test_polygon_across_antimeridian_is_split_and_holds_both_sides():
    zone = from_geojson({"type": "Polygon", "coordinates": [
        [[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]]}, 1)
    assert zone.geometry.geom_type == "MultiPolygon"
    minx, _, maxx, _ = zone.geometry.bounds
    assert minx >= -180 and maxx <= 180
    assert zone.geometry.covers(shapely.Point(179.9, 0))
    assert zone.geometry.covers(shapely.Point(-179.9, 0))
    assert zone.geometry.covers(shapely.Point(180, 0)) and zone.geometry.covers(shapely.Point(-180, 0))
    assert not zone.geometry.covers(shapely.Point(0, 0))
    assert not zone.geometry.covers(shapely.Point(178.9, 0))
    assert zone.geometry.area == pytest.approx(4.0)


def test_circle_and_corridor_across_antimeridian():
    zone = circle(1, "c", 180.0, 0.0, 50_000)
    assert zone.geometry.covers(_at(180.0, 0.0, 90, 49_000))
    assert zone.geometry.covers(_at(180.0, 0.0, 270, 49_000))
    assert not zone.geometry.covers(shapely.Point(0, 0))
    road = corridor(2, "r", [(179.5, 0.0), (-179.5, 0.0)], 1_000)
    assert road.geometry.covers(shapely.Point(179.9, 0.0))
    assert road.geometry.covers(shapely.Point(-179.9, 0.004))
    assert not road.geometry.covers(shapely.Point(0.0, 0.0))


def test_traccar_circle_is_lat_lon():
    zone = from_traccar_area("CIRCLE (48.8584 2.2945, 150)", 7, "tower")
    assert zone.kind == "circle" and zone.radius_m == 150
    _assert_radius(zone, 2.2945, 48.8584, 150)


def test_traccar_polygon_is_lat_lon_closed_or_not():
    closed = from_traccar_area("POLYGON ((10 20, 10 21, 11 21, 11 20, 10 20))", 1)
    open_ring = from_traccar_area("polygon((10 20,10 21,11 21,11 20))", 2)
    for zone in (closed, open_ring):
        assert zone.geometry.bounds == (20.0, 10.0, 21.0, 11.0)  # lon 20..21, lat 10..11
        assert zone.geometry.covers(shapely.Point(20.5, 10.5))
        assert not zone.geometry.covers(shapely.Point(10.5, 20.5))


def test_explicit_polygon_builder():
    zone = polygon(3, "sq", [[[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]]])
    assert zone.geometry.area == pytest.approx(1.0)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: from_geojson({"type": "Polygon", "coordinates": []}, 1), "empty geometry"),
    (lambda: from_wkt("POLYGON EMPTY", 1), "empty geometry"),
    (lambda: from_geojson({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, 1),
     "not closed"),
    (lambda: from_geojson({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, 1),
     "Self-intersection"),
    (lambda: from_wkt("POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))", 1), "Self-intersection"),
    (lambda: from_traccar_area("POLYGON ((0 0, 2 2, 0 2, 2 0))", 1), "Self-intersection"),
    (lambda: from_geojson({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, 1),
     "at least 3 distinct points"),
    (lambda: from_wkt("POLYGON ((0 0, 200 0, 200 1, 0 0))", 1), "longitude 200.0 out of range"),
    (lambda: from_geojson({"type": "Point", "coordinates": [0, 95]}, 1, radius_m=10),
     "latitude 95.0 out of range"),
    (lambda: from_traccar_area("CIRCLE (95 10, 100)", 1), "latitude 95.0 out of range"),
    (lambda: circle(1, "c", 0, 0, 0), "radius 0.0 m out of range"),
    (lambda: circle(1, "c", 0, 0, -5), "radius -5.0 m out of range"),
    (lambda: circle(1, "c", 0, 0, 1_000_001), "out of range"),
    (lambda: circle(1, "c", 0, 89.9, 50_000), "contains a pole"),
    (lambda: from_geojson({"type": "Point", "coordinates": [0, 0]}, 1), "radius_m for a Point is required"),
    (lambda: from_wkt("LINESTRING (0 0, 1 1)", 1), "width_m for a LINESTRING is required"),
    (lambda: corridor(1, "r", [(0, 0), (0.1, 0)], 0), "corridor width 0.0 m out of range"),
    (lambda: corridor(1, "r", [(0, 0), (0.1, 0)], 10_001), "corridor width 10001.0 m out of range"),
    (lambda: corridor(1, "r", [(0, 0), (0, 0)], 10), "at least 2 distinct points"),
    (lambda: from_wkt("POLYGON ((0 0, 1 0", 1), "WKT could not be parsed"),
    (lambda: from_wkt("POINT (1 2)", 1, radius_m=float("nan")), "not finite"),
    (lambda: from_geojson({"type": "GeometryCollection", "geometries": []}, 1), "empty geometry"),
    (lambda: from_geojson({"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}),
     "zone id is required"),
    (lambda: from_geojson("{not json", 1), "not valid JSON"),
    (lambda: from_geojson({"type": "Polygon", "coordinates": [[[0, "x"], [1, 0], [1, 1], [0, 0]]]}, 1),
     "not a number"),
    (lambda: from_traccar_area("SQUARE (1 2, 3)", 1), "is not CIRCLE"),
    (lambda: from_traccar_area("CIRCLE (1 2)", 1), "needs 'lat lon, radius'"),
    (lambda: from_traccar_area("POLYGON ((1 2, 3, 4 5))", 1), "'3' is not 'lat lon'"),
    (lambda: from_traccar_area("LINESTRING (1 2, 3 4)", 1), "width_m for a Traccar LINESTRING is required"),
])
def test_invalid_input_says_what_is_wrong(make, message):
    with pytest.raises(ZoneError, match=message.replace("(", r"\(").replace("?", r"\?")):
        make()


def test_zone_error_is_a_value_error():
    assert issubclass(ZoneError, ValueError)


def test_zone_is_frozen():
    zone = circle(1, "c", 0, 0, 10)
    with pytest.raises(AttributeError):
        zone.name = "other"  # type: ignore[misc]
