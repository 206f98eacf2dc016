"""Zones, spatial index and rule state machines (Shapely and pyproj only).

Like `protocols`, it never imports Twisted, SQLAlchemy or the clock.  Coordinates are
(lon, lat) degrees on WGS84 everywhere except in Traccar area strings (lat lon).

- `geofence.zones`: `Zone` (circle, polygon, corridor) and its parsers `from_geojson`,
  `from_wkt`, `from_traccar_area`; bad input raises `ZoneError` (a `ValueError`).
  Zones crossing the antimeridian are split into a MultiPolygon at +-180.
- `geofence.index`: `ZoneIndex` (prepared geometries in an STRtree) with
  `containing(lon, lat)` and `crossed(lon1, lat1, lon2, lat2)`; a point on a zone's
  edge counts as inside (``covers``).
"""

from geofence.index import ZoneIndex
from geofence.zones import (
    Zone,
    ZoneError,
    circle,
    corridor,
    from_geojson,
    from_traccar_area,
    from_wkt,
    polygon,
)

__all__ = [
    "Zone",
    "ZoneError",
    "ZoneIndex",
    "circle",
    "corridor",
    "from_geojson",
    "from_traccar_area",
    "from_wkt",
    "polygon",
]
