"""Zones, spatial index and rule state machines (Shapely and pyproj only).

Filled in by the geofences issue; like `protocols`, it never imports Twisted,
SQLAlchemy or the clock.
"""
