"""Zone input and output formats around the stored form, a GeoJSON Feature.

Stored form (what `feature_from_input` returns and `zone_from_feature` reads), always
in (lon, lat) degrees, coordinates as floats, rings closed::

    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [...]}, "properties": {}}
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
     "properties": {"radius_m": 200.0}}                                  # circle
    {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [...]},
     "properties": {"width_m": 50.0}}                                     # corridor

Polygons may have holes; MultiPolygon is allowed.  The Feature carries no id and no
name (the geofence row holds them).  It keeps the coordinates as given, not the
antimeridian-split geometry the `Zone` is built from.

Inputs (`feature_from_input`, exactly one of):

- ``area``: a Traccar area string, **lat lon** order: ``CIRCLE (lat lon, r)``,
  ``POLYGON ((lat lon, ...))`` (rings closed for you; further rings are holes),
  ``MULTIPOLYGON (((...)), ...)``, ``LINESTRING (lat lon, ...)``.  Traccar's corridor
  is every point within ``polylineDistance`` metres of the line (its attribute, default
  `DEFAULT_POLYLINE_DISTANCE_M` = 25 m, Traccar's server default), so the corridor's
  width is ``2 * polylineDistance``.
- ``wkt``: OGC WKT, lon lat order: POLYGON, MULTIPOLYGON, POINT (radius in metres from
  ``attributes["radius"]``), LINESTRING (width in metres from ``attributes["width"]``).
- ``geojson``: a geometry or a Feature (dict or JSON text); a Point needs the Feature
  property ``radius_m``, a LineString ``width_m``.

Validation builds the zone with the input's own parser from `geofence.zones` (so the
messages speak the input's language, e.g. ``Traccar POLYGON: ...``); every error is a
`ZoneError`.

Outputs: `traccar_area` (Traccar string, lat lon) and `wkt_text` (OGC, lon lat).
Numbers are written with ``repr`` (the shortest text that reads back as the same
float), without a trailing ``.0``, so every output reads back to the same zone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import shapely
from shapely import wkt as shapely_wkt
from shapely.geometry import mapping

from geofence.zones import (
    Zone,
    ZoneError,
    ZoneId,
    from_geojson,
    from_traccar_area,
    from_wkt,
    traccar_geometry,
)

__all__ = [
    "DEFAULT_POLYLINE_DISTANCE_M",
    "feature_from_input",
    "traccar_area",
    "wkt_text",
    "zone_from_feature",
]

DEFAULT_POLYLINE_DISTANCE_M = 25.0
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_GEOMETRY_TYPES = ("Point", "LineString", "Polygon", "MultiPolygon")


def feature_from_input(*, area: str | None = None, wkt: str | None = None,
                       geojson: Mapping[str, Any] | str | None = None,
                       attributes: Mapping[str, Any] = _EMPTY) -> dict[str, Any]:
    """The validated stored Feature of a zone given as exactly one of `area` (Traccar),
    `wkt` or `geojson`; `attributes` are the geofence's attributes (polylineDistance,
    radius, width).  Raises `ZoneError`."""
    inputs = (("area", area), ("wkt", wkt), ("geojson", geojson))
    given = [name for name, value in inputs if value is not None]
    if len(given) != 1:
        raise ZoneError(f"give exactly one of area, wkt, geojson (got {', '.join(given) or 'none'})")
    if not isinstance(attributes, Mapping):
        raise ZoneError(f"attributes must be an object, got {type(attributes).__name__}")
    if area is not None:
        return _from_area(area, attributes)
    if wkt is not None:
        return _from_wkt(wkt, attributes)
    assert geojson is not None   # exactly one was given
    return _from_geojson(geojson)


def zone_from_feature(zone_id: ZoneId, name: str, feature: Mapping[str, Any]) -> Zone:
    """The `Zone` of a stored Feature (see the module docstring)."""
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise ZoneError("stored zone must be a GeoJSON Feature")
    return from_geojson(feature, zone_id, name)


def traccar_area(feature: Mapping[str, Any]) -> str:
    """The Traccar area string of a stored Feature, lat lon order.

    Circle ``CIRCLE (lat lon, r)``; polygon ``POLYGON ((lat lon, ...), (hole))``;
    MultiPolygon ``MULTIPOLYGON (((lat lon, ...)), ...)``; corridor ``LINESTRING (lat
    lon, ...)`` (its width is not part of the string: Traccar's ``polylineDistance``
    attribute is half of it).
    """
    kind, coordinates, properties = _parts(feature)

    def pairs(points: Sequence[Sequence[float]]) -> str:
        return ", ".join(f"{_num(lat)} {_num(lon)}" for lon, lat, *_ in points)

    if kind == "Point":
        lon, lat, *_ = coordinates
        return f"CIRCLE ({_num(lat)} {_num(lon)}, {_num(properties.get('radius_m'))})"
    if kind == "LineString":
        return f"LINESTRING ({pairs(coordinates)})"
    if kind == "Polygon":
        return f"POLYGON ({_rings(coordinates, pairs)})"
    return "MULTIPOLYGON (" + ", ".join(f"({_rings(rings, pairs)})" for rings in coordinates) + ")"


def wkt_text(feature: Mapping[str, Any]) -> str:
    """OGC WKT of a stored Feature, lon lat order; a circle is its centre POINT, a
    corridor its LINESTRING (radius and width are in the Feature's properties)."""
    kind, coordinates, _ = _parts(feature)

    def pairs(points: Sequence[Sequence[float]]) -> str:
        return ", ".join(f"{_num(lon)} {_num(lat)}" for lon, lat, *_ in points)

    if kind == "Point":
        return f"POINT ({pairs([coordinates])})"
    if kind == "LineString":
        return f"LINESTRING ({pairs(coordinates)})"
    if kind == "Polygon":
        return f"POLYGON ({_rings(coordinates, pairs)})"
    return "MULTIPOLYGON (" + ", ".join(f"({_rings(rings, pairs)})" for rings in coordinates) + ")"


# --- inputs ------------------------------------------------------------------------


def _from_area(area: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    geometry, radius_m = traccar_geometry(area)
    width_m = None
    if geometry["type"] == "LineString":
        distance = _positive(attributes.get("polylineDistance", DEFAULT_POLYLINE_DISTANCE_M),
                             "attributes.polylineDistance")
        width_m = 2.0 * distance
    from_traccar_area(area, 0, width_m=width_m)  # validates; messages name the Traccar form
    return _feature(geometry, radius_m=radius_m, width_m=width_m)


def _from_wkt(text: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ZoneError(f"wkt must be a string, got {type(text).__name__}")
    try:
        parsed = shapely_wkt.loads(text)
    except (shapely.errors.GEOSException, ValueError, TypeError, AttributeError) as exc:
        raise ZoneError(f"WKT could not be parsed: {exc}") from exc
    kind = parsed.geom_type
    radius_m = width_m = None
    if kind == "Point":
        radius_m = _positive(_required(attributes, "radius", "WKT POINT"), "attributes.radius")
    elif kind == "LineString":
        width_m = _positive(_required(attributes, "width", "WKT LINESTRING"), "attributes.width")
    from_wkt(text, 0, radius_m=radius_m, width_m=width_m)  # validates
    return _feature(dict(mapping(parsed)), radius_m=radius_m, width_m=width_m)


def _from_geojson(obj: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(obj, str | bytes):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise ZoneError(f"GeoJSON is not valid JSON: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise ZoneError(f"GeoJSON must be an object, got {type(obj).__name__}")
    geometry: Any = obj
    properties: Any = {}
    if obj.get("type") == "Feature":
        geometry, properties = obj.get("geometry"), obj.get("properties") or {}
        if not isinstance(geometry, Mapping) or not isinstance(properties, Mapping):
            raise ZoneError("GeoJSON Feature needs a geometry object and properties as an object")
    kind = geometry.get("type")
    radius_m = width_m = None
    if kind == "Point" and properties.get("radius_m") is not None:
        radius_m = _positive(properties["radius_m"], "properties.radius_m")
    if kind == "LineString" and properties.get("width_m") is not None:
        width_m = _positive(properties["width_m"], "properties.width_m")
    from_geojson(geometry, 0, radius_m=radius_m, width_m=width_m)  # validates
    return _feature(geometry, radius_m=radius_m, width_m=width_m)


def _feature(geometry: Mapping[str, Any], *, radius_m: float | None, width_m: float | None) -> dict[str, Any]:
    """The canonical Feature: float coordinates (lon, lat only), nested lists."""
    kind = geometry["type"]
    depth = {"Point": 0, "LineString": 1, "Polygon": 2, "MultiPolygon": 3}[kind]
    properties: dict[str, Any] = {}
    if radius_m is not None:
        properties["radius_m"] = float(radius_m)
    if width_m is not None:
        properties["width_m"] = float(width_m)
    return {"type": "Feature",
            "geometry": {"type": kind, "coordinates": _floats(geometry["coordinates"], depth)},
            "properties": properties}


def _floats(value: Any, depth: int) -> list[Any]:
    if depth == 0:
        return [float(value[0]), float(value[1])]
    return [_floats(item, depth - 1) for item in value]


def _required(attributes: Mapping[str, Any], key: str, what: str) -> Any:
    if attributes.get(key) is None:
        raise ZoneError(f"{what} needs attributes.{key} (metres)")
    return attributes[key]


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ZoneError(f"{what} must be a number of metres, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ZoneError(f"{what} must be a number of metres, got {value!r}") from exc
    if not (math.isfinite(number) and number > 0):
        raise ZoneError(f"{what} must be a positive number of metres, got {value!r}")
    return number


# --- outputs -----------------------------------------------------------------------


def _parts(feature: Mapping[str, Any]) -> tuple[str, Any, Mapping[str, Any]]:
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise ZoneError("stored zone must be a GeoJSON Feature")
    geometry = feature.get("geometry")
    properties = feature.get("properties") or {}
    if not isinstance(geometry, Mapping) or geometry.get("type") not in _GEOMETRY_TYPES:
        raise ZoneError(f"stored zone geometry must be one of {', '.join(_GEOMETRY_TYPES)}")
    if not isinstance(properties, Mapping):
        raise ZoneError("stored zone properties must be an object")
    return geometry["type"], geometry.get("coordinates"), properties


def _rings(rings: Sequence[Any], pairs: Any) -> str:
    return ", ".join(f"({pairs(ring)})" for ring in rings)


def _num(value: Any) -> str:
    """Shortest text of a float that reads back exactly, without a needless '.0'."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ZoneError(f"stored zone has a non-numeric value {value!r}") from exc
    text = repr(number)
    return text[:-2] if text.endswith(".0") else text
