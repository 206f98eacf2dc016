"""Zone formats: Traccar area / WKT / GeoJSON in, the stored Feature, Traccar area / WKT out."""

from __future__ import annotations

import json

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.formats import feature_from_input, traccar_area, wkt_text, zone_from_feature
from geofence.zones import ZoneError, from_geojson, from_traccar_area, from_wkt

SQUARE = [[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]
HOLE = [[13.04, 52.04], [13.06, 52.04], [13.06, 52.06], [13.04, 52.06], [13.04, 52.04]]


def _point_feature(coordinates, radius_m):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": coordinates},
            "properties": {"radius_m": radius_m}}


def test_traccar_circle_becomes_a_point_feature_in_lon_lat():
    feature = feature_from_input(area="CIRCLE (52.5 13.4, 200)")
    assert feature == {"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.4, 52.5]},
                       "properties": {"radius_m": 200.0}}
    zone = zone_from_feature(5, "Depot", feature)
    assert (zone.id, zone.name, zone.kind) == (5, "Depot", "circle")
    assert (zone.radius_m, zone.center) == (200.0, (13.4, 52.5))
    assert zone.geometry.equals(from_traccar_area("CIRCLE (52.5 13.4, 200)", 5).geometry)


def test_traccar_polygon_is_closed_and_swapped_to_lon_lat():
    feature = feature_from_input(area="POLYGON ((52.0 13.0, 52.0 13.1, 52.1 13.1, 52.1 13.0))")
    assert feature["geometry"] == {"type": "Polygon", "coordinates": [
        [[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]]}
    assert feature["properties"] == {}


def test_traccar_polygon_with_a_hole_and_multipolygon():
    feature = feature_from_input(area="POLYGON ((52.0 13.0, 52.0 13.1, 52.1 13.1, 52.1 13.0), "
                                      "(52.04 13.04, 52.04 13.06, 52.06 13.06, 52.06 13.04))")
    zone = zone_from_feature(1, "", feature)
    assert len(feature["geometry"]["coordinates"]) == 2
    assert not zone.geometry.covers(shapely.Point(13.05, 52.05))   # in the hole
    assert zone.geometry.covers(shapely.Point(13.02, 52.02))
    direct = from_traccar_area("POLYGON ((52.0 13.0, 52.0 13.1, 52.1 13.1, 52.1 13.0), "
                               "(52.04 13.04, 52.04 13.06, 52.06 13.06, 52.06 13.04))", 1)
    assert direct.geometry.equals(zone.geometry)
    multi = feature_from_input(area="MULTIPOLYGON (((0 0, 0 1, 1 1)), ((5 5, 5 6, 6 6, 5 5)))")
    assert multi["geometry"]["type"] == "MultiPolygon"
    assert zone_from_feature(2, "", multi).geometry.covers(shapely.Point(5.9, 5.5))


def test_traccar_linestring_width_is_twice_the_polyline_distance():
    default = feature_from_input(area="LINESTRING (47.0 8.0, 47.0 8.1)")
    assert default["geometry"] == {"type": "LineString", "coordinates": [[8.0, 47.0], [8.1, 47.0]]}
    assert default["properties"] == {"width_m": 50.0}
    wide = feature_from_input(area="LINESTRING (47.0 8.0, 47.0 8.1)", attributes={"polylineDistance": 40})
    assert wide["properties"] == {"width_m": 80.0}
    assert zone_from_feature(1, "", wide).width_m == 80.0


def test_wkt_input_lon_lat_with_radius_and_width_from_attributes():
    polygon = feature_from_input(wkt="POLYGON ((13 52, 13.1 52, 13.1 52.1, 13 52.1, 13 52))")
    assert polygon["geometry"] == {"type": "Polygon", "coordinates": [SQUARE]}
    point = feature_from_input(wkt="POINT (13.4 52.5)", attributes={"radius": 150})
    assert point["geometry"]["coordinates"] == [13.4, 52.5] and point["properties"] == {"radius_m": 150.0}
    line = feature_from_input(wkt="LINESTRING (8 47, 8.1 47)", attributes={"width": 30})
    assert line["properties"] == {"width_m": 30.0}
    multi = feature_from_input(wkt="MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))")
    assert multi["geometry"]["type"] == "MultiPolygon" and len(multi["geometry"]["coordinates"]) == 2


def test_geojson_geometry_feature_and_text_give_the_same_canonical_feature():
    ring = [[13, 52], [13.1, 52], [13.1, 52.1], [13, 52.1], [13, 52]]
    geometry = {"type": "Polygon", "coordinates": [ring]}
    feature = {"type": "Feature", "id": 9, "geometry": geometry, "properties": {"name": "x", "colour": "red"}}
    expected = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [SQUARE]}, "properties": {}}
    assert feature_from_input(geojson=geometry) == expected
    assert feature_from_input(geojson=feature) == expected   # no id, no name inside
    assert feature_from_input(geojson=json.dumps(feature)) == expected
    circle = feature_from_input(geojson=_point_feature([1, 2, 30], 10))
    assert circle == {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
                      "properties": {"radius_m": 10.0}}


def test_polygon_with_hole_from_geojson_keeps_the_hole():
    feature = feature_from_input(geojson={"type": "Polygon", "coordinates": [SQUARE, HOLE]})
    assert feature["geometry"]["coordinates"] == [SQUARE, HOLE]


def test_antimeridian_feature_keeps_the_input_coordinates_but_the_zone_is_split():
    ring = [[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]
    feature = feature_from_input(geojson={"type": "Polygon", "coordinates": [ring]})
    assert feature["geometry"]["coordinates"] == [[[float(x), float(y)] for x, y in ring]]
    zone = zone_from_feature(1, "", feature)
    assert zone.geometry.geom_type == "MultiPolygon"
    assert zone.geometry.covers(shapely.Point(-179.5, 0)) and zone.geometry.covers(shapely.Point(179.5, 0))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give exactly one of area, wkt, geojson (got none)"),
    ({"area": "CIRCLE (1 2, 3)", "wkt": "POINT (1 2)"},
     "give exactly one of area, wkt, geojson (got area, wkt)"),
    ({"area": "POLYGON ((0 0, 2 2, 0 2, 2 0))"}, "Self-intersection"),
    ({"area": "CIRCLE (95 10, 100)"}, "latitude 95.0 out of range"),
    ({"area": "CIRCLE (52 13, 0)"}, "radius 0.0 m out of range"),
    ({"area": "SQUARE (1 2)"}, "is not CIRCLE"),
    ({"area": "LINESTRING (47 8, 47 8.1)", "attributes": {"polylineDistance": -5}},
     "attributes.polylineDistance must be a positive number"),
    ({"area": "LINESTRING (47 8, 47 8.1)", "attributes": {"polylineDistance": "wide"}},
     "attributes.polylineDistance must be a number"),
    ({"area": "LINESTRING (47 8, 47 8.1)", "attributes": {"polylineDistance": 6000}}, "corridor width"),
    ({"area": "POLYGON ((1 2, 3 4, 5 6)) junk"}, "is not CIRCLE"),
    ({"area": "POLYGON ((1 2, 3 4, 5 6)), (7 8)"}, "Traccar POLYGON: unbalanced ')'"),
    ({"area": "POLYGON ((1 2, 3 4, 5 6) (7 8, 9 9, 8 7))"}, "Traccar POLYGON: missing ','"),
    ({"wkt": "POINT (13 52)"}, "WKT POINT needs attributes.radius"),
    ({"wkt": "LINESTRING (13 52, 13.1 52)"}, "WKT LINESTRING needs attributes.width"),
    ({"wkt": "POINT (13 52)", "attributes": {"radius": 0}}, "attributes.radius must be a positive number"),
    ({"wkt": "POLYGON ((0 0, 1 0"}, "WKT could not be parsed"),
    ({"wkt": "POINT (13 52)", "attributes": "radius=5"}, "attributes must be an object"),
    ({"wkt": "GEOMETRYCOLLECTION (POINT (1 2))"}, "not supported"),
    ({"geojson": {"type": "Point", "coordinates": [13, 52]}}, "radius_m for a Point is required"),
    ({"geojson": {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 0]]},
                  "properties": {}}}, "width_m for a LineString is required"),
    ({"geojson": "{oops"}, "not valid JSON"),
    ({"geojson": _point_feature([13, 52], True)}, "properties.radius_m must be a number of metres"),
    ({"geojson": _point_feature([13, 52], -3)}, "properties.radius_m must be a positive number"),
    ({"geojson": {"type": "Polygon", "coordinates": [[[0, 95], [1, 0], [1, 1], [0, 95]]]}},
     "latitude 95.0 out of range"),
    ({"geojson": {"type": "Feature", "geometry": None}}, "needs a geometry object"),
    ({"geojson": {"type": "GeometryCollection", "geometries": []}}, "empty geometry"),
])
def test_invalid_input_raises_zone_error_with_a_clear_message(kwargs, message):
    with pytest.raises(ZoneError) as caught:
        feature_from_input(**kwargs)
    assert message in str(caught.value)


def test_traccar_area_output_examples():
    assert traccar_area(feature_from_input(area="CIRCLE (52.5 13.4, 200)")) == "CIRCLE (52.5 13.4, 200)"
    polygon = feature_from_input(geojson={"type": "Polygon", "coordinates": [SQUARE, HOLE]})
    assert traccar_area(polygon) == ("POLYGON ((52 13, 52 13.1, 52.1 13.1, 52.1 13, 52 13), "
                                     "(52.04 13.04, 52.04 13.06, 52.06 13.06, 52.06 13.04, 52.04 13.04))")
    multi = feature_from_input(wkt="MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))")
    assert traccar_area(multi) == "MULTIPOLYGON (((0 0, 0 1, 1 1, 0 0)), ((5 5, 5 6, 6 6, 5 5)))"
    line = feature_from_input(wkt="LINESTRING (8 47, 8.125 47.5)", attributes={"width": 30})
    assert traccar_area(line) == "LINESTRING (47 8, 47.5 8.125)"


def test_wkt_text_output_examples():
    assert wkt_text(feature_from_input(area="CIRCLE (52.5 13.4, 200)")) == "POINT (13.4 52.5)"
    polygon = feature_from_input(geojson={"type": "Polygon", "coordinates": [SQUARE]})
    assert wkt_text(polygon) == "POLYGON ((13 52, 13.1 52, 13.1 52.1, 13 52.1, 13 52))"
    line = feature_from_input(area="LINESTRING (47 8, 47.5 8.125)")
    assert wkt_text(line) == "LINESTRING (8 47, 8.125 47.5)"


FEATURES = [
    feature_from_input(area="CIRCLE (48.8584 2.2945, 150.5)"),
    feature_from_input(geojson={"type": "Polygon", "coordinates": [SQUARE, HOLE]}),
    feature_from_input(wkt="MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))"),
    feature_from_input(geojson={"type": "Polygon",
                                "coordinates": [[[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]]}),
    feature_from_input(wkt="LINESTRING (8 47, 8.1 47.05, 8.2 47)", attributes={"width": 37}),
    feature_from_input(geojson=_point_feature([0.1 + 0.2, 1 / 3], 1.0)),
]


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f["geometry"]["type"])
def test_traccar_area_round_trip_gives_the_same_feature_and_zone(feature):
    width_m = feature["properties"].get("width_m")
    attributes = {} if width_m is None else {"polylineDistance": width_m / 2}
    again = feature_from_input(area=traccar_area(feature), attributes=attributes)
    assert again == feature
    geometry = zone_from_feature(1, "", feature).geometry
    assert zone_from_feature(1, "", again).geometry.equals_exact(geometry, 0)


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f["geometry"]["type"])
def test_wkt_round_trip_gives_the_same_feature(feature):
    properties = feature["properties"]
    attributes = {"radius": properties.get("radius_m"), "width": properties.get("width_m")}
    assert feature_from_input(wkt=wkt_text(feature), attributes=attributes) == feature


@settings(max_examples=60, deadline=None)
@given(lon=st.floats(-180, 180), lat=st.floats(-80, 80), radius_m=st.floats(0.5, 100_000))
def test_any_circle_survives_the_traccar_round_trip_bit_for_bit(lon, lat, radius_m):
    feature = feature_from_input(geojson=_point_feature([lon, lat], radius_m))
    assert feature_from_input(area=traccar_area(feature)) == feature


def test_stored_feature_is_checked_on_output():
    with pytest.raises(ZoneError, match="GeoJSON Feature"):
        traccar_area({"type": "Polygon", "coordinates": [SQUARE]})
    with pytest.raises(ZoneError, match="must be one of"):
        wkt_text({"type": "Feature", "geometry": {"type": "GeometryCollection"}, "properties": {}})
    with pytest.raises(ZoneError, match="GeoJSON Feature"):
        zone_from_feature(1, "", {"type": "Point", "coordinates": [1, 2]})


def test_zone_from_feature_uses_the_given_id_and_name_not_the_features():
    feature = {"type": "Feature", "id": 99, "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
               "properties": {"name": "inner"}}
    zone = zone_from_feature(3, "outer", feature)
    assert (zone.id, zone.name) == (3, "outer")
    assert zone.geometry.equals(from_geojson(feature).geometry)
    assert zone.geometry.equals(from_wkt(wkt_text(feature_from_input(geojson=feature)), 3).geometry)
