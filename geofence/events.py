"""Built-in event types, shared by the engine (`geofence.engine`) and user rules
(`geofence.rules`), which both name them; a module of its own so that neither of
those imports the other."""

from __future__ import annotations

import enum

__all__ = ["GEOFENCE_EVENTS", "EventType"]


@enum.unique
class EventType(enum.StrEnum):
    """Built-in event types (Traccar's names where Traccar has the event)."""

    DEVICE_ONLINE = "deviceOnline"
    DEVICE_OFFLINE = "deviceOffline"
    DEVICE_UNKNOWN = "deviceUnknown"
    DEVICE_INACTIVE = "deviceInactive"
    ALARM = "alarm"
    IGNITION_ON = "ignitionOn"
    IGNITION_OFF = "ignitionOff"
    GEOFENCE_EXIT = "geofenceExit"
    GEOFENCE_ENTER = "geofenceEnter"
    GEOFENCE_CROSSED = "geofenceCrossed"
    GEOFENCE_DWELL = "geofenceDwell"
    DEVICE_OVERSPEED = "deviceOverspeed"
    DEVICE_MOVING = "deviceMoving"
    DEVICE_STOPPED = "deviceStopped"
    DEVICE_IDLE = "deviceIdle"


GEOFENCE_EVENTS = frozenset({EventType.GEOFENCE_ENTER, EventType.GEOFENCE_EXIT,
                             EventType.GEOFENCE_DWELL, EventType.GEOFENCE_CROSSED})
