"""Zones, spatial index, calendars, user rules and the rule engine (Shapely and pyproj only).

Like `protocols`, it never imports Twisted, SQLAlchemy or the clock (``now`` is passed
in).  Coordinates are (lon, lat) degrees on WGS84 everywhere except in Traccar area
strings (lat lon).

- `geofence.zones`: `Zone` (circle, polygon, corridor) and its parsers `from_geojson`,
  `from_wkt`, `from_traccar_area`; bad input raises `ZoneError` (a `ValueError`).
  Zones crossing the antimeridian are split into a MultiPolygon at +-180.
  `distance_m` measures how far a position is outside a zone.
- `geofence.index`: `ZoneIndex` (prepared geometries in an STRtree) with
  `containing(lon, lat)` and `crossed(lon1, lat1, lon2, lat2)`; a point on a zone's
  edge counts as inside (``covers``).
- `geofence.formats`: the stored zone form (a GeoJSON Feature) from Traccar area, WKT
  or GeoJSON input (`feature_from_input`), back to a `Zone` (`zone_from_feature`) and
  out as Traccar area (`traccar_area`) or WKT (`wkt_text`).
- `geofence.calendar`: `Calendar`, weekly active hours in a local time zone;
  `CalendarError`.
- `geofence.rules`: user rules (`parse_rule` -> `Rule`, `RuleError`): attribute
  thresholds, changes and event conditions, with device/group, zone and calendar
  filters and a message template.
- `geofence.engine`: `Engine` turns one device's fixes, status reports, connections
  and clock ticks (`Fix`, `DeviceContext`, `Profile`, `ZoneRule`, in
  `geofence.records`) into `Happening`s, keeping a JSON-serialisable `DeviceState`
  (`geofence.state`: one slice per handler).
- `geofence.chain`: the `Handler` base class of the built-in rules and what a handler
  sees; `geofence.handlers`: one module per built-in rule and the ordered registry
  `HANDLERS` (a new built-in rule is one class there and one registry line).
"""

from geofence.calendar import Calendar, CalendarError
from geofence.engine import (
    DeviceContext,
    DeviceState,
    Engine,
    EventType,
    Fix,
    Happening,
    Profile,
    ZoneRule,
)
from geofence.formats import feature_from_input, traccar_area, wkt_text, zone_from_feature
from geofence.index import ZoneIndex
from geofence.rules import Rule, RuleError, parse_rule
from geofence.zones import (
    Zone,
    ZoneError,
    circle,
    corridor,
    distance_m,
    from_geojson,
    from_traccar_area,
    from_wkt,
    polygon,
)

__all__ = [
    "Calendar",
    "CalendarError",
    "DeviceContext",
    "DeviceState",
    "Engine",
    "EventType",
    "Fix",
    "Happening",
    "Profile",
    "Rule",
    "RuleError",
    "Zone",
    "ZoneError",
    "ZoneIndex",
    "ZoneRule",
    "circle",
    "corridor",
    "distance_m",
    "feature_from_input",
    "from_geojson",
    "from_traccar_area",
    "from_wkt",
    "parse_rule",
    "polygon",
    "traccar_area",
    "wkt_text",
    "zone_from_feature",
]
