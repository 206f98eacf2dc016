"""Zones: circles, polygons and corridors, parsed from GeoJSON, WKT and Traccar areas.

Every geometry is a Shapely geometry in (lon, lat) degrees on WGS84.

- Circle: centre + ``radius_m`` (0 < r <= 1,000 km).  Built geodesically: `CIRCLE_VERTICES`
  points at distance r from the centre, computed with the module-level `GEOD`
  (``pyproj.Geod(ellps="WGS84")``, built once).  A regular polygon inscribed in the circle
  is at worst r*cos(pi/n) from the centre: with 64 vertices, 0.12% short of r (< 0.5%).
  A circle that would reach a pole is refused.
- Polygon: exterior ring plus holes (GeoJSON Polygon / MultiPolygon, WKT POLYGON /
  MULTIPOLYGON, Traccar ``POLYGON ((lat lon, ...), (hole ...))`` and
  ``MULTIPOLYGON (((lat lon, ...)), ...)``).  Rings must be closed (GeoJSON and
  WKT; Traccar strings are closed for you), have 3 distinct points and not self-intersect
  (Shapely ``is_valid``; the message is ``explain_validity``).  Edges are straight in
  (lon, lat), as in GeoJSON.
- Corridor: a line buffered by ``width_m / 2`` on each side (0 < width <= 10 km), round
  ends.  The line's edges are straight in (lon, lat), like polygon edges.  Each segment
  is densified (0.005 degree steps), projected to a local azimuthal equidistant CRS
  centred on its midpoint (``pyproj.Transformer``, ``always_xy=True``), buffered in
  metres, densified to 1 km edges and projected back; the segments' buffers are united.
  Accurate to well under 1% of the width for segments up to ~100 km.

Antimeridian: an edge whose longitudes differ by more than 180 degrees is taken to cross
the antimeridian (the short way round), never to go the long way round the globe.  Such
a ring is unwrapped (longitudes made continuous, possibly beyond +-180) and the shape is
then **split at +-180 into a MultiPolygon** whose parts all lie in [-180, 180], so
queries never need to shift a position's longitude.  Circles and corridors are handled
the same way.  Shapes containing a pole are not supported.

Coordinates: longitude in [-180, 180], latitude in [-90, 90], finite.  Anything wrong
raises `ZoneError` (a `ValueError`) saying what.

`distance_m(zone, lon, lat)` measures how far a position is outside a zone (geodesic
metres, 0 inside); the rule engine uses it for exit hysteresis.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyproj
import shapely
from shapely import wkt as shapely_wkt
from shapely.affinity import scale as scale_geometry
from shapely.affinity import translate
from shapely.geometry import LineString, MultiPolygon, Polygon, box
from shapely.validation import explain_validity

__all__ = [
    "CIRCLE_VERTICES",
    "GEOD",
    "MAX_CORRIDOR_WIDTH_M",
    "MAX_RADIUS_M",
    "Zone",
    "ZoneError",
    "ZoneId",
    "circle",
    "corridor",
    "distance_m",
    "from_geojson",
    "from_traccar_area",
    "from_wkt",
    "polygon",
    "split_at_antimeridian",
    "traccar_geometry",
]

GEOD = pyproj.Geod(ellps="WGS84")
CIRCLE_VERTICES = 64
MAX_RADIUS_M = 1_000_000.0
MAX_CORRIDOR_WIDTH_M = 10_000.0
_DENSIFY_M = 1_000.0
_DENSIFY_DEG = 0.005

ZoneId = int | str
Kind = Literal["circle", "polygon", "corridor"]
Coords = Sequence[tuple[float, float]]


class ZoneError(ValueError):
    """A zone definition that cannot be turned into a valid zone; the message says why."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A named area; `geometry` is a Shapely (Multi)Polygon in (lon, lat) degrees.

    `center` is the (lon, lat) centre of a circle (None for other kinds).
    """

    id: ZoneId
    name: str
    kind: Kind
    geometry: shapely.Geometry
    radius_m: float | None = None
    width_m: float | None = None
    center: tuple[float, float] | None = None


# --- coordinates -------------------------------------------------------------------


def _check_lon_lat(lon: float, lat: float) -> tuple[float, float]:
    try:
        lon, lat = float(lon), float(lat)
    except (TypeError, ValueError) as exc:
        raise ZoneError(f"coordinate is not a number: ({lon!r}, {lat!r})") from exc
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ZoneError(f"coordinate is not finite: ({lon}, {lat})")
    if not -180.0 <= lon <= 180.0:
        raise ZoneError(f"longitude {lon} out of range [-180, 180]")
    if not -90.0 <= lat <= 90.0:
        raise ZoneError(f"latitude {lat} out of range [-90, 90]")
    return lon, lat


def _positions(raw: Any, what: str) -> list[tuple[float, float]]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ZoneError(f"{what}: expected a list of positions, got {type(raw).__name__}")
    points = []
    for position in raw:
        if not isinstance(position, Sequence) or isinstance(position, str) or len(position) < 2:
            raise ZoneError(f"{what}: position {position!r} is not [lon, lat]")
        points.append(_check_lon_lat(position[0], position[1]))
    return points


def _wrap(lon: float, reference: float) -> float:
    """`lon` shifted by a multiple of 360 to lie within 180 degrees of `reference`."""
    if -180.0 <= lon - reference <= 180.0:
        return lon  # unchanged, bit for bit: rings stay closed
    return lon + 360.0 * round((reference - lon) / 360.0)


def _unwrap(points: Coords, reference: float | None = None) -> list[tuple[float, float]]:
    """Longitudes made continuous (no step over 180 degrees), first one near `reference`."""
    out: list[tuple[float, float]] = []
    previous = reference
    for raw_lon, lat in points:
        lon = raw_lon if previous is None else _wrap(raw_lon, previous)
        out.append((lon, lat))
        previous = lon
    return out


def split_at_antimeridian(geometry: shapely.Geometry) -> shapely.Geometry:
    """`geometry` (longitudes possibly beyond +-180) cut at +-180 and moved into [-180, 180].

    Polygons come back as a Polygon or MultiPolygon, lines as a (Multi)LineString.
    """
    minx, _, maxx, _ = geometry.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return geometry
    parts = []
    for shift in (-360.0, 0.0, 360.0):
        clip = box(-180.0 - shift, -90.0, 180.0 - shift, 90.0)
        part = geometry.intersection(clip)
        if not part.is_empty:
            parts.append(translate(part, xoff=shift))
    pieces: list[shapely.Geometry] = []
    for part in parts:
        pieces.extend(getattr(part, "geoms", [part]))
    keep = [p for p in pieces if p.geom_type in ("Polygon", "LineString") and not p.is_empty]
    if all(p.geom_type == "Polygon" for p in keep):
        return shapely.union_all([p for p in keep if p.area > 0])
    return shapely.multilinestrings(keep) if len(keep) > 1 else keep[0]


# --- builders ----------------------------------------------------------------------


def _ring(points: Coords, what: str, reference: float | None, close: bool) -> list[tuple[float, float]]:
    if not points:
        raise ZoneError(f"{what}: empty ring")
    points = list(points)
    if points[0] != points[-1]:
        if not close:
            raise ZoneError(f"{what}: ring is not closed (first point {points[0]} != last {points[-1]})")
        points.append(points[0])
    if len(set(points)) < 3:
        raise ZoneError(f"{what}: ring needs at least 3 distinct points, got {len(set(points))}")
    unwrapped = _unwrap(points, reference)
    if abs(unwrapped[-1][0] - unwrapped[0][0]) > 1e-9:
        raise ZoneError(f"{what}: ring goes all the way round the globe (contains a pole?)")
    return unwrapped


def _polygon_geometry(polygons: Iterable[Sequence[Coords]], what: str,
                      close: bool = False) -> shapely.Geometry:
    """Validated (Multi)Polygon from lists of rings (exterior first) of (lon, lat)."""
    built = []
    for number, rings in enumerate(polygons):
        if not rings:
            raise ZoneError(f"{what}: polygon {number} has no rings")
        exterior = _ring(rings[0], f"{what} exterior ring", None, close)
        reference = exterior[0][0]
        holes = [_ring(hole, f"{what} hole {i}", reference, close) for i, hole in enumerate(rings[1:])]
        built.append(Polygon(exterior, holes))
    if not built:
        raise ZoneError(f"{what}: empty geometry")
    geometry = built[0] if len(built) == 1 else MultiPolygon(built)
    if not geometry.is_valid:
        raise ZoneError(f"{what}: invalid geometry: {explain_validity(geometry)}")
    if geometry.area <= 0:
        raise ZoneError(f"{what}: polygon has no area")
    return split_at_antimeridian(geometry)


def _check_id(zone_id: Any) -> ZoneId:
    if isinstance(zone_id, bool) or not isinstance(zone_id, int | str):
        raise ZoneError(f"zone id must be an int or a str, got {zone_id!r}")
    return zone_id


def polygon(zone_id: ZoneId, name: str, polygons: Iterable[Sequence[Coords]]) -> Zone:
    """A polygon zone from polygons given as rings (exterior first) of (lon, lat) tuples."""
    parsed = [[_positions(ring, "polygon") for ring in rings] for rings in polygons]
    return Zone(_check_id(zone_id), name, "polygon", _polygon_geometry(parsed, "polygon"))


def circle(zone_id: ZoneId, name: str, lon: float, lat: float, radius_m: float) -> Zone:
    """A geodesic circle of `radius_m` metres around (lon, lat)."""
    lon, lat = _check_lon_lat(lon, lat)
    radius_m = _number(radius_m, "radius_m")
    if not 0.0 < radius_m <= MAX_RADIUS_M:
        raise ZoneError(f"circle radius {radius_m} m out of range (0, {MAX_RADIUS_M:.0f}]")
    for pole in (90.0, -90.0):
        if GEOD.inv(lon, lat, lon, pole)[2] <= radius_m:
            raise ZoneError(f"circle of {radius_m} m around ({lon}, {lat}) contains a pole")
    n = CIRCLE_VERTICES
    azimuths = [360.0 * i / n for i in range(n)]
    lons, lats, _ = GEOD.fwd([lon] * n, [lat] * n, azimuths, [radius_m] * n)
    ring = [(_wrap(x, lon), y) for x, y in zip(lons, lats, strict=True)]
    geometry = Polygon(ring)
    if not geometry.is_valid:  # pragma: no cover - geodesic circles are convex
        raise ZoneError(f"circle: invalid geometry: {explain_validity(geometry)}")
    return Zone(_check_id(zone_id), name, "circle", split_at_antimeridian(geometry), radius_m=radius_m,
                center=(lon, lat))


def corridor(zone_id: ZoneId, name: str, line: Coords, width_m: float) -> Zone:
    """Everything within `width_m / 2` metres of the polyline `line` of (lon, lat)."""
    width_m = _number(width_m, "width_m")
    if not 0.0 < width_m <= MAX_CORRIDOR_WIDTH_M:
        raise ZoneError(f"corridor width {width_m} m out of range (0, {MAX_CORRIDOR_WIDTH_M:.0f}]")
    points = _unwrap(_positions(line, "corridor line"))
    if len(set(points)) < 2:
        raise ZoneError(f"corridor line needs at least 2 distinct points, got {len(set(points))}")
    if max(abs(lat) for _, lat in points) > 89.0:
        raise ZoneError("corridor line comes within 1 degree of a pole")
    pieces = []
    for (lon1, lat1), (lon2, lat2) in zip(points, points[1:], strict=False):
        if (lon1, lat1) == (lon2, lat2):
            continue
        mid_lon, mid_lat = (lon1 + lon2) / 2.0, (lat1 + lat2) / 2.0
        local = pyproj.Transformer.from_crs(
            "EPSG:4326",
            pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={mid_lat} +lon_0={_wrap(mid_lon, 0.0)} "
                                  "+datum=WGS84 +units=m +no_defs"),
            always_xy=True)
        steps = max(1, math.ceil(max(abs(lon2 - lon1), abs(lat2 - lat1)) / _DENSIFY_DEG))
        lons = [lon1 + (lon2 - lon1) * i / steps for i in range(steps + 1)]
        lats = [lat1 + (lat2 - lat1) * i / steps for i in range(steps + 1)]
        xs, ys = local.transform([_wrap(x, 0.0) for x in lons], lats)
        buffered = LineString(zip(xs, ys, strict=True)).buffer(width_m / 2.0, quad_segs=16)
        buffered = shapely.segmentize(buffered, _DENSIFY_M)
        outline_x, outline_y = buffered.exterior.xy
        ex, ey = local.transform(outline_x, outline_y, direction="INVERSE")
        pieces.append(Polygon([(_wrap(x, mid_lon), y) for x, y in zip(ex, ey, strict=True)]))
    geometry = shapely.union_all(pieces)
    if geometry.is_empty or not geometry.is_valid:
        raise ZoneError("corridor: could not build a valid geometry")
    return Zone(_check_id(zone_id), name, "corridor", split_at_antimeridian(geometry), width_m=width_m)


def _number(value: Any, what: str) -> float:
    if value is None:
        raise ZoneError(f"{what} is required")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ZoneError(f"{what} is not a number: {value!r}") from exc
    if not math.isfinite(number):
        raise ZoneError(f"{what} is not finite: {value!r}")
    return number


# --- parsers -----------------------------------------------------------------------


def _feature(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """A GeoJSON Feature's geometry and its id, name, radius_m and width_m (or None)."""
    properties = obj.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise ZoneError("GeoJSON Feature properties must be an object")
    geometry = obj.get("geometry")
    if not isinstance(geometry, Mapping):
        raise ZoneError("GeoJSON Feature has no geometry")
    defaults = {key: properties.get(key) for key in ("name", "radius_m", "width_m")}
    defaults["id"] = obj.get("id")
    return geometry, defaults


def from_geojson(obj: Mapping[str, Any] | str, zone_id: ZoneId | None = None, name: str | None = None, *,
                 radius_m: float | None = None, width_m: float | None = None) -> Zone:
    """A zone from a GeoJSON geometry or Feature (a dict or its JSON text), (lon, lat).

    Polygon / MultiPolygon -> polygon; Point + radius_m -> circle; LineString + width_m
    -> corridor.  For a Feature, `zone_id`, `name`, `radius_m` and `width_m` default to
    its ``id`` and its properties ``name``, ``radius_m`` and ``width_m``.
    """
    if isinstance(obj, str | bytes):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise ZoneError(f"GeoJSON is not valid JSON: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise ZoneError(f"GeoJSON must be an object, got {type(obj).__name__}")
    geometry = obj
    if obj.get("type") == "Feature":
        geometry, defaults = _feature(obj)
        zone_id = defaults["id"] if zone_id is None else zone_id
        name = defaults["name"] if name is None else name
        radius_m = defaults["radius_m"] if radius_m is None else radius_m
        width_m = defaults["width_m"] if width_m is None else width_m
    if zone_id is None:
        raise ZoneError("zone id is required (argument or Feature id)")
    name = "" if name is None else str(name)
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if coordinates is None or coordinates == []:
        raise ZoneError(f"GeoJSON {kind}: empty geometry (no coordinates)")
    if kind == "Point":
        point = _positions([coordinates], "GeoJSON Point")[0]
        return circle(zone_id, name, point[0], point[1], _number(radius_m, "radius_m for a Point"))
    if kind == "LineString":
        return corridor(zone_id, name, _positions(coordinates, "GeoJSON LineString"),
                        _number(width_m, "width_m for a LineString"))
    if kind == "Polygon":
        polygons = [coordinates]
    elif kind == "MultiPolygon":
        polygons = coordinates
    else:
        raise ZoneError(f"GeoJSON type {kind!r} not supported (Polygon, MultiPolygon, Point, LineString)")
    try:
        parsed = [[_positions(ring, f"GeoJSON {kind}") for ring in rings] for rings in polygons]
    except TypeError as exc:
        raise ZoneError(f"GeoJSON {kind}: malformed coordinates") from exc
    return Zone(_check_id(zone_id), name, "polygon", _polygon_geometry(parsed, f"GeoJSON {kind}"))


def from_wkt(text: str, zone_id: ZoneId, name: str = "", *,
             radius_m: float | None = None, width_m: float | None = None) -> Zone:
    """A zone from OGC WKT in (lon lat) order: POLYGON, MULTIPOLYGON, POINT + radius_m,
    LINESTRING + width_m."""
    try:
        geometry = shapely_wkt.loads(text)
    except (shapely.errors.GEOSException, ValueError, TypeError, AttributeError) as exc:
        raise ZoneError(f"WKT could not be parsed: {exc}") from exc
    kind = geometry.geom_type
    if geometry.is_empty:
        raise ZoneError(f"WKT {kind}: empty geometry")
    if kind == "Point":
        return circle(zone_id, name, geometry.x, geometry.y, _number(radius_m, "radius_m for a POINT"))
    if kind == "LineString":
        return corridor(zone_id, name, list(geometry.coords), _number(width_m, "width_m for a LINESTRING"))
    if kind == "Polygon":
        polygons = [geometry]
    elif kind == "MultiPolygon":
        polygons = list(geometry.geoms)
    else:
        raise ZoneError(f"WKT type {kind} not supported (POLYGON, MULTIPOLYGON, POINT, LINESTRING)")
    rings = [[_positions(list(p.exterior.coords), f"WKT {kind}")]
             + [_positions(list(h.coords), f"WKT {kind}") for h in p.interiors] for p in polygons]
    return Zone(_check_id(zone_id), name, "polygon", _polygon_geometry(rings, f"WKT {kind}"))


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TRACCAR = re.compile(r"^\s*(CIRCLE|POLYGON|MULTIPOLYGON|LINESTRING)\s*\((.*)\)\s*$",
                      re.IGNORECASE | re.DOTALL)
_PAIR = re.compile(rf"^\s*({_NUMBER})\s+({_NUMBER})\s*$")


def _traccar_pairs(body: str, what: str) -> list[tuple[float, float]]:
    """'lat lon, lat lon, ...' -> [(lon, lat), ...]."""
    points = []
    for chunk in body.split(","):
        match = _PAIR.match(chunk)
        if not match:
            raise ZoneError(f"Traccar {what}: {chunk.strip()!r} is not 'lat lon'")
        lat, lon = float(match.group(1)), float(match.group(2))
        points.append(_check_lon_lat(lon, lat))
    return points


def _groups(text: str, what: str) -> list[str]:
    """'(a), (b)' -> ['a', 'b']: the parenthesised groups of a comma-separated list."""
    groups: list[str] = []
    depth, start, after_group = 0, 0, False
    for i, char in enumerate(text):
        if char == "(":
            if depth == 0:
                if after_group:
                    raise ZoneError(f"Traccar {what}: missing ',' between groups at {text[i:i + 20]!r}")
                start = i + 1
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ZoneError(f"Traccar {what}: unbalanced ')' at {text[i:i + 20]!r}")
            if depth == 0:
                groups.append(text[start:i])
                after_group = True
        elif depth == 0:
            if char == "," and after_group:
                after_group = False
            elif not char.isspace():
                raise ZoneError(f"Traccar {what}: unexpected {text[i:i + 20]!r} outside parentheses")
    if depth or not groups or not after_group:
        raise ZoneError(f"Traccar {what}: unbalanced parentheses or empty group in {text[:60]!r}")
    return groups


def _traccar_rings(body: str, what: str) -> list[list[tuple[float, float]]]:
    """'(lat lon, ...), (lat lon, ...)' -> rings of (lon, lat), as written (closed or not)."""
    rings = _groups(body, what)
    if any("(" in ring or ")" in ring for ring in rings):
        raise ZoneError(f"Traccar {what}: a ring is '(lat lon, ...)', nested deeper than expected")
    return [_traccar_pairs(ring, what) for ring in rings]


def _parse_traccar(text: Any) -> tuple[str, Any]:
    """A Traccar area string -> (kind, data) in (lon, lat), not yet validated as a shape.

    CIRCLE: ((lon, lat), radius); LINESTRING: points; POLYGON: rings; MULTIPOLYGON:
    polygons (lists of rings).  Rings are returned as written (closed or not).
    """
    if not isinstance(text, str):
        raise ZoneError(f"Traccar area must be a string, got {type(text).__name__}")
    match = _TRACCAR.match(text)
    if not match:
        raise ZoneError(f"Traccar area {text[:60]!r} is not CIRCLE (...), POLYGON ((...)), "
                        "MULTIPOLYGON (((...))) or LINESTRING (...)")
    kind, body = match.group(1).upper(), match.group(2)
    if kind == "CIRCLE":
        parts = body.split(",")
        if len(parts) != 2:
            raise ZoneError(f"Traccar CIRCLE needs 'lat lon, radius', got {body.strip()!r}")
        (point,) = _traccar_pairs(parts[0], "CIRCLE")
        return kind, (point, _number(parts[1].strip(), "Traccar CIRCLE radius"))
    if kind == "LINESTRING":
        return kind, _traccar_pairs(body, "LINESTRING")
    if kind == "POLYGON":
        if "(" not in body:
            raise ZoneError(f"Traccar POLYGON needs rings in double parentheses, got {text[:60]!r}")
        return kind, _traccar_rings(body, "POLYGON")
    return kind, [_traccar_rings(polygon_body, "MULTIPOLYGON")
                  for polygon_body in _groups(body, "MULTIPOLYGON")]


def _closed(ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return ring if ring[0] == ring[-1] else [*ring, ring[0]]


def traccar_geometry(text: str) -> tuple[dict[str, Any], float | None]:
    """A Traccar area string as a GeoJSON geometry in (lon, lat) and, for a CIRCLE, its
    radius in metres (the geometry is then a Point).  Rings come back closed.

    Only the syntax is checked here; `from_traccar_area` validates the shape.
    """
    kind, data = _parse_traccar(text)
    if kind == "CIRCLE":
        (lon, lat), radius_m = data
        return {"type": "Point", "coordinates": [lon, lat]}, radius_m
    if kind == "LINESTRING":
        return {"type": "LineString", "coordinates": [[lon, lat] for lon, lat in data]}, None
    polygons = [[[[lon, lat] for lon, lat in _closed(ring)] for ring in rings]
                for rings in ([data] if kind == "POLYGON" else data)]
    if kind == "POLYGON":
        return {"type": "Polygon", "coordinates": polygons[0]}, None
    return {"type": "MultiPolygon", "coordinates": polygons}, None


def from_traccar_area(text: str, zone_id: ZoneId, name: str = "", *, width_m: float | None = None) -> Zone:
    """A zone from a Traccar ``area`` string, whose order is **lat lon**.

    ``CIRCLE (lat lon, radius_m)``, ``POLYGON ((lat lon, lat lon, ...))`` (rings closed
    or not; further rings are holes: ``POLYGON ((...), (...))``), ``MULTIPOLYGON
    (((...)), ((...)))`` and ``LINESTRING (lat lon, ...)`` with `width_m` (Traccar keeps
    the corridor width in its configuration, not in the string).
    """
    kind, data = _parse_traccar(text)
    if kind == "CIRCLE":
        (lon, lat), radius_m = data
        return circle(zone_id, name, lon, lat, radius_m)
    if kind == "LINESTRING":
        return corridor(zone_id, name, data, _number(width_m, "width_m for a Traccar LINESTRING"))
    polygons = [data] if kind == "POLYGON" else data
    return Zone(_check_id(zone_id), name, "polygon",
                _polygon_geometry(polygons, f"Traccar {kind}", close=True))


# --- distance ----------------------------------------------------------------------


def distance_m(zone: Zone, lon: float, lat: float) -> float:
    """Geodesic distance in metres from (lon, lat) to `zone`; 0.0 when the zone covers it.

    Circles: distance from the centre minus the radius (the true circle, not its
    64-gon).  Other zones: the nearest point of the geometry is found in a local
    equirectangular frame around (lon, lat) (longitudes scaled by cos(lat)), also
    across the antimeridian, and its geodesic distance is returned.  Accurate to well
    under 1% for distances up to ~100 km; meant for hysteresis bands of metres.
    """
    point = shapely.Point(lon, lat)
    if zone.geometry.covers(point):
        return 0.0
    if zone.kind == "circle" and zone.center is not None and zone.radius_m is not None:
        return max(0.0, GEOD.inv(zone.center[0], zone.center[1], lon, lat)[2] - zone.radius_m)
    scale = max(math.cos(math.radians(lat)), 1e-6)
    minx, _, maxx, _ = zone.geometry.bounds
    shifts = [0.0]
    if minx <= -179.0 or maxx >= 179.0:
        shifts += [-360.0, 360.0]
    best = math.inf
    for shift in shifts:
        moved = translate(zone.geometry, xoff=shift) if shift else zone.geometry
        scaled = scale_geometry(moved, xfact=scale, yfact=1.0, origin=(lon, lat))
        near_x, near_y = shapely.shortest_line(point, scaled).coords[1]
        best = min(best, GEOD.inv(lon, lat, lon + (near_x - lon) / scale, near_y)[2])
    return best
