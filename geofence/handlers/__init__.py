"""The built-in rules, one handler per module, and their order: `HANDLERS`.

To add a built-in rule, write one `geofence.chain.Handler` subclass in a module here
(its docstring says what it fires and when, its slice's JSON) and add one line to
`HANDLERS` where its events belong in a call's order.  A handler may read the slices
of handlers above it.  The engine runs user rules (`UserRulesHandler`) after all of
them.  If the rule emits a new event type, add it to `geofence.events.EventType` (so
user rules can name it); a new threshold is a `Profile` field (and a line in
``tracker.rules.SETTINGS`` for its device setting).
"""

from typing import Any

from geofence.chain import Handler
from geofence.handlers.alarms import AlarmHandler
from geofence.handlers.geofences import GeofenceHandler
from geofence.handlers.idle import IdleHandler
from geofence.handlers.ignition import IgnitionHandler
from geofence.handlers.inactive import InactiveHandler
from geofence.handlers.motion import MotionHandler
from geofence.handlers.overspeed import OverspeedHandler
from geofence.handlers.status import StatusHandler
from geofence.handlers.user_rules import UserRulesHandler

__all__ = [
    "HANDLERS",
    "AlarmHandler",
    "GeofenceHandler",
    "IdleHandler",
    "IgnitionHandler",
    "InactiveHandler",
    "MotionHandler",
    "OverspeedHandler",
    "StatusHandler",
    "UserRulesHandler",
]

# The chain, in the order of a call's happenings (see `geofence.engine`).
HANDLERS: tuple[type[Handler[Any]], ...] = (
    StatusHandler,      # deviceOnline / deviceOffline / deviceUnknown
    InactiveHandler,    # deviceInactive
    AlarmHandler,       # alarm
    IgnitionHandler,    # ignitionOn / ignitionOff
    GeofenceHandler,    # geofenceExit, geofenceEnter, geofenceCrossed, geofenceDwell
    OverspeedHandler,   # deviceOverspeed (reads zone membership)
    MotionHandler,      # deviceMoving / deviceStopped
    IdleHandler,        # deviceIdle (reads ignition)
)
