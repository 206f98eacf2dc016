"""Spatial index over zones: which zones hold a position, which a segment crosses.

`ZoneIndex` keeps the zones' geometries prepared (``shapely.prepare``) in a Shapely
`STRtree`.  A query first takes the zones whose bounding box holds the point (the tree),
then tests each candidate exactly.

Boundary semantics: a point **on the edge of a zone counts as inside**.  The exact test
is ``covers`` (``zone.covers(point)``), not ``contains``: Shapely's ``contains`` leaves
out the boundary ("a polygon does not contain its boundary").  This also holds on the
artificial seam of a zone split at the antimeridian (see `geofence.zones`).

`crossed` answers for a straight segment in (lon, lat) between two consecutive fixes, so
a fast mover that jumps over a small zone between two positions is still seen; a segment
whose longitudes differ by more than 180 degrees crosses the antimeridian the short way.
"""

from __future__ import annotations

from collections.abc import Iterable

import shapely
from shapely.geometry import LineString

from geofence.zones import Zone, ZoneId, split_at_antimeridian

__all__ = ["ZoneIndex"]


class ZoneIndex:
    """An immutable set of zones queried by position (lon, lat).

    Preparing the geometries mutates only their internal cache; the zones stay equal.
    """

    __slots__ = ("_geometries", "_ids", "_tree", "zones")

    def __init__(self, zones: Iterable[Zone]) -> None:
        self.zones: tuple[Zone, ...] = tuple(zones)
        ids = [zone.id for zone in self.zones]
        if len(set(ids)) != len(ids):
            raise ValueError("zone ids must be unique")
        self._ids = ids
        self._tree = shapely.STRtree([zone.geometry for zone in self.zones])
        self._geometries = self._tree.geometries  # an array, indexed by the tree's answers
        shapely.prepare(self._geometries)

    def __len__(self) -> int:
        return len(self.zones)

    def containing(self, lon: float, lat: float) -> frozenset[ZoneId]:
        """Ids of the zones covering (lon, lat); a point on a zone's edge is inside."""
        point = shapely.Point(lon, lat)
        candidates = self._tree.query(point)
        if not len(candidates):
            return frozenset()
        hits = candidates[shapely.covers(self._geometries[candidates], point)]
        ids = self._ids
        return frozenset(ids[i] for i in hits)

    def crossed(self, lon1: float, lat1: float, lon2: float, lat2: float) -> frozenset[ZoneId]:
        """Ids of the zones the straight segment (lon1, lat1) -> (lon2, lat2) touches.

        Includes zones holding either end.  The segment is straight in (lon, lat) and
        takes the short way across the antimeridian.
        """
        if lon1 == lon2 and lat1 == lat2:
            return self.containing(lon1, lat1)
        if abs(lon2 - lon1) > 180.0:
            lon2 += 360.0 if lon2 < lon1 else -360.0
        segment = split_at_antimeridian(LineString([(lon1, lat1), (lon2, lat2)]))
        candidates = self._tree.query(segment)
        if not len(candidates):
            return frozenset()
        hits = candidates[shapely.intersects(self._geometries[candidates], segment)]
        ids = self._ids
        return frozenset(ids[i] for i in hits)
