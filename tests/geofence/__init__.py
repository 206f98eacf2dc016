"""Tests of the geofence package: zones and the zone index."""
