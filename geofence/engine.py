"""The rule engine: one device's reports in, events ("happenings") out.

Pure: no I/O, no clock (``now`` is always passed in), no Twisted, no database.  The
caller keeps one mutable `DeviceState` per device, passes it with the device's
`DeviceContext` to `Engine.fix` / `status` / `connected` / `disconnected` / `tick`, and
stores the returned `Happening`s and ``state.to_json()`` together, so a restart
(``DeviceState.from_json``) resumes exactly where the committed data left off.

The engine is a chain of handlers (`geofence.chain`): each built-in rule is one
`Handler` class in `geofence/handlers/`, listed in the ordered registry
`geofence.handlers.HANDLERS`; the user rules (`geofence.rules.Rule`) run after it.
Each call runs one hook of every handler, in registry order, and returns their
happenings in that order.  Each handler owns one slice of the `DeviceState`; its module
docstring says exactly what it fires and when.

Adding a built-in rule: write one `Handler` subclass in a new module of
`geofence/handlers/` (its ``name`` keys its slice, a small dataclass with ``to_json`` /
``from_json``; its hooks return happenings) and add one line to
`geofence.handlers.HANDLERS` at the place its events belong.  The engine and the device
state need no change: the slice is created, stored and restored by name.  A new event
type is also one `EventType` line (so user rules can name it); a new threshold is a
`Profile` field.

Entry points:

- `Engine.fix(ctx, state, fix, now)`: a live fix.  The caller stores a fix older than
  the newest live one (`DeviceState.is_late`) as archive and does not evaluate it.  A
  fix at the same time as the newest one is a retransmission: like any fix not newer
  than the newest it only marks the device seen (the ``on_seen`` hooks), so a second
  delivery never fires anything twice.  Every fix given is taken as the device's
  position (the caller passes invalid fixes to `status`).  Hooks: ``on_seen``, then
  (a newer fix) ``on_fix``; then the fix becomes the newest one.
- `Engine.status(ctx, state, attributes, time, now)`: a report without a usable fix
  (heartbeat, invalid fix): ``on_seen``, then ``on_status`` (alarms, ignition, user
  rules).
- `Engine.connected` / `disconnected`: ``on_connected`` / ``on_disconnected``
  (deviceOnline / deviceOffline).
- `Engine.tick(ctx, state, now)`: about every 30 s per known device, ``on_tick``:
  deviceUnknown, deviceInactive, and geofenceDwell for a device inside a zone that
  sends nothing.

Events (`EventType`, Traccar names where Traccar has them; attributes JSON-safe, times
as ISO 8601 strings; geofence events also set `Happening.geofence_id`), in this order
within one `fix` (the registry's order; details in each handler's module):

1. deviceOnline (`handlers.status`): the device was not "online" (HTTP devices have no
   connection).  Time ``now``, ``at_fix=False``.
2. alarm {alarm} (`handlers.alarms`).
3. ignitionOn / ignitionOff (`handlers.ignition`).
4. geofenceExit, geofenceEnter, geofenceCrossed, geofenceDwell {geofenceId}
   (`handlers.geofences`), each kind by zone id.
5. deviceOverspeed {speed, speedLimit[, geofenceId]} (`handlers.overspeed`).
6. deviceMoving / deviceStopped {since} (`handlers.motion`).
7. deviceIdle {since} (`handlers.idle`).
8. User rules (`handlers.user_rules`), by rule id.

From `tick`: deviceUnknown (`handlers.status`), deviceInactive (`handlers.inactive`),
geofenceDwell by zone id, user rules.  These are at ``now`` or a computed time,
``at_fix=False``.

State: `DeviceState.to_json` is JSON-safe (times as ISO 8601 strings) and versioned;
`DeviceState.from_json` never raises: a wrong version or garbage gives a fresh state,
missing or malformed slices or fields their defaults; version 1 documents (before the
chain) are read (see `geofence.state`).

Performance: one `ZoneIndex` query per fix, none for a device with no zones (see
`handlers.geofences`); a hook a handler does not override costs nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from geofence.calendar import Calendar
from geofence.chain import EMPTY, HOOKS, Configuration, Handler, Report, Slice, Step
from geofence.events import GEOFENCE_EVENTS, EventType
from geofence.handlers.geofences import Visit
from geofence.handlers.user_rules import RuleMemory
from geofence.records import DeviceContext, Fix, Happening, Profile, ZoneRule
from geofence.state import STATE_VERSION, DeviceState, HandlerClass, chain_of

if TYPE_CHECKING:
    from geofence.rules import Rule

__all__ = [
    "GEOFENCE_EVENTS",
    "STATE_VERSION",
    "DeviceContext",
    "DeviceState",
    "Engine",
    "EventType",
    "Fix",
    "Happening",
    "Profile",
    "RuleMemory",
    "Visit",
    "ZoneRule",
]

_Hook = tuple[str, type[Slice], Callable[[Any, Any], Iterable[Happening]]]


class Engine:
    """Zones, user rules and calendars of one configuration; evaluates device reports.

    `zones`: every organisation's zones (``ctx.zone_ids`` selects a device's); ids must
    be unique ints.  `rules`: user rules of every organisation.  `calendars`: calendar
    id -> `Calendar`, for the rules' ``calendar`` (zone calendars are in `ZoneRule`).
    `handlers`: the built-in chain, by default the registry `geofence.handlers.HANDLERS`
    (user rules always run after it).
    """

    __slots__ = ("_hooks", "config", "handlers")

    def __init__(self, zones: Iterable[ZoneRule], rules: Iterable[Rule] = (),
                 calendars: Mapping[int, Calendar] = EMPTY, *,
                 handlers: Iterable[HandlerClass] | None = None) -> None:
        self.config = Configuration.build(zones, rules, calendars)
        self.handlers: tuple[Handler[Any], ...] = tuple(cls(self.config) for cls in chain_of(handlers))
        # per hook, the handlers that override it: (slice name, slice type, bound hook)
        self._hooks: dict[str, tuple[_Hook, ...]] = {
            hook: tuple((handler.name, handler.slice_type, getattr(handler, hook))
                        for handler in self.handlers
                        if getattr(type(handler), hook) is not getattr(Handler, hook))
            for hook in HOOKS}

    def _run(self, hook: str, step: Step, state: DeviceState, out: list[Happening]) -> None:
        slices, extend = state.slices, out.extend
        for name, kind, method in self._hooks[hook]:
            mine = slices.get(name)
            if mine is None:
                mine = slices[name] = kind()
            happenings = method(step, mine)
            if happenings:
                extend(happenings)

    # -- entry points -----------------------------------------------------------------

    def fix(self, ctx: DeviceContext, state: DeviceState, fix: Fix, now: dt.datetime) -> list[Happening]:
        """Happenings of a live fix, in the documented order; `state` updated in place."""
        out: list[Happening] = []
        newest = state.fix_time
        step = Report(ctx, state, now, out, fix.time, fix.attributes, fix, newest is None)
        self._run("on_seen", step, state, out)
        if newest is not None and fix.time <= newest:
            return out  # retransmitted (or late, which the caller should not pass)
        self._run("on_fix", step, state, out)
        state.fix_time, state.fix_lon, state.fix_lat = fix.time, fix.lon, fix.lat
        return out

    def status(self, ctx: DeviceContext, state: DeviceState, attributes: Mapping[str, Any],
               time: dt.datetime, now: dt.datetime) -> list[Happening]:
        """Happenings of a report without a fix (at `time`): alarms, ignition, rules."""
        out: list[Happening] = []
        step = Report(ctx, state, now, out, time, attributes, None, state.fix_time is None)
        self._run("on_seen", step, state, out)
        self._run("on_status", step, state, out)
        return out

    def connected(self, ctx: DeviceContext, state: DeviceState, now: dt.datetime) -> list[Happening]:
        """deviceOnline unless the device is online already."""
        return self._plain("on_connected", ctx, state, now)

    def disconnected(self, ctx: DeviceContext, state: DeviceState, now: dt.datetime) -> list[Happening]:
        """deviceOffline if the device was online."""
        return self._plain("on_disconnected", ctx, state, now)

    def tick(self, ctx: DeviceContext, state: DeviceState, now: dt.datetime) -> list[Happening]:
        """Time-based happenings: deviceUnknown, deviceInactive, geofenceDwell."""
        return self._plain("on_tick", ctx, state, now)

    def _plain(self, hook: str, ctx: DeviceContext, state: DeviceState, now: dt.datetime) -> list[Happening]:
        out: list[Happening] = []
        self._run(hook, Step(ctx, state, now, out), state, out)
        return out
