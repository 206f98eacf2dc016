"""The rule engine in the running server: configuration, device states, the clock.

`geofence.engine` is pure: it knows zones, rules and one device's state, and is told
the time.  This module feeds it:

- `RuleBook`: one configuration snapshot (`Store.rule_config()`) turned into an
  `Engine` (zones, calendars, user rules) and a `DeviceContext` per device (assigned
  zones, thresholds, the organisation's time zone).  Thresholds resolve device
  settings > group attributes > server defaults (``[events]`` in the config file).
- `RuleService`: holds the current book and every device's `DeviceState`.  States
  are loaded from the database at start (`Store.rule_states()`), changed in memory
  by the pipeline and committed with the positions and events they produced
  (`Batch.states`), so a restart resumes from exactly the committed data and fires
  no duplicate enter or exit.  A poll (every `poll_s`) rebuilds the book when the
  configuration revision changed (the API also asks at once after a write); a tick
  (every `tick_s`) lets time-based events fire for devices that send nothing
  (deviceUnknown, deviceInactive, geofenceDwell) and connections report
  deviceOnline / deviceOffline.

A new state is adopted only once its batch is committed.  The service observes the
batch writer (`batch_committed` / `batch_refused`): it keeps each device's last
COMMITTED state, and when a batch is refused (quarantined, writer overloaded,
dropped at shutdown) the device's working state goes back to it, so the events of
the refused data fire again from the device's next report instead of being lost
(an enter that was never stored is not "remembered").  One limit, by design: when
later batches of the same device, computed on top of the refused one, are already
on their way to the database, the working state is kept (those batches carry it,
and their own events are stored); only the refused batch's events are lost then.

Work on the reactor stays short: the book is rebuilt on the thread pool (it
compiles every zone and rule), and the tick walks the device states cooperatively
(`TICK_SLICE_DEVICES` at a time, yielding to the reactor between slices, each
slice's events committed on their own).

Device settings and group attributes understood (Traccar-style names, units fixed):
see `SETTINGS`.  A stored zone or rule that no longer parses is skipped with a log
line (it was validated on save; this guards against data written by other tools).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from geofence.calendar import Calendar
from geofence.engine import DeviceContext, DeviceState, Engine, Fix, Happening, Profile, ZoneRule
from geofence.formats import zone_from_feature
from geofence.rules import parse_rule
from tracker.models import Batch, Device, NewEvent, RuleConfig, RuleState

log = Logger()

# Device settings / group attributes -> Profile field.
SETTINGS: Mapping[str, str] = {
    "speedLimit": "speed_limit_kn",                  # knots, as Traccar
    "overspeedMinimalDuration": "overspeed_min_duration_s",
    "motionSpeedThreshold": "motion_speed_kn",
    "movingMinimalDistance": "moving_min_distance_m",
    "movingMinimalDuration": "moving_min_duration_s",
    "stoppedMinimalDuration": "stopped_min_duration_s",
    "idleMinimalDuration": "idle_after_s",
    "inactivityPeriod": "inactive_after_s",
    "statusTimeout": "status_timeout_s",
    "hysteresisMeters": "hysteresis_m",
    "hysteresisFixes": "hysteresis_fixes",
}
PROFILE_FIELDS = frozenset(field.name for field in dataclasses.fields(Profile))
TICK_SLICE_DEVICES = 500     # device states per tick slice between reactor turns
UTC_ZONE = zoneinfo.ZoneInfo("UTC")
DEFAULT_PROFILE = Profile()


class SettingsError(ValueError):
    """A threshold default in the configuration file is unknown or not a number."""


def profile_defaults(values: Mapping[str, Any]) -> Profile:
    """The server-wide Profile from ``[events]`` (keys are Profile field names)."""
    unknown = sorted(set(values) - PROFILE_FIELDS)
    if unknown:
        raise SettingsError(f"[events]: unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(PROFILE_FIELDS))}")
    return _apply(Profile(), {name: value for name, value in values.items()}, "[events]")


def _apply(profile: Profile, values: Mapping[str, Any], where: str) -> Profile:
    """`profile` with the numeric `values` (field name -> value) applied.  A bad value
    raises SettingsError (the config file) -- callers with stored data catch it."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            changes[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{where}: {name} must be a number, not {value!r}")
        if value < 0:
            raise SettingsError(f"{where}: {name} must not be negative, not {value!r}")
        changes[name] = int(value) if name == "hysteresis_fixes" else float(value)
    return dataclasses.replace(profile, **changes)


def _settings(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {SETTINGS[key]: value for key, value in attributes.items() if key in SETTINGS}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class RuleBook:
    """One configuration snapshot, ready for evaluation; see the module docstring."""

    def __init__(self, config: RuleConfig, defaults: Profile) -> None:
        self.revision = config.revision
        self.defaults = defaults
        self._timezones = {org.id: _timezone(org.timezone) for org in config.organisations}
        calendars = {c.id: calendar for c in config.calendars
                     if (calendar := _calendar(c.id, c.data)) is not None}
        zones = [rule for g in config.geofences if (rule := _zone_rule(g, calendars)) is not None]
        known_zones = {rule.zone.id for rule in zones}
        rules = [rule for r in config.rules if (rule := _user_rule(r)) is not None]
        self.engine = Engine(zones, rules, calendars)
        self._groups = {group.id: group for group in config.groups}
        by_device: dict[int, set[int]] = {}
        by_group: dict[int, set[int]] = {}
        for device_id, geofence_id in config.device_geofences:
            by_device.setdefault(device_id, set()).add(geofence_id)
        for group_id, geofence_id in config.group_geofences:
            by_group.setdefault(group_id, set()).add(geofence_id)
        self._contexts: dict[int, DeviceContext] = {}
        for device in config.devices:
            group_zones = by_group.get(device.group_id, set()) if device.group_id is not None else set()
            zone_ids = by_device.get(device.id, set()) | group_zones
            self._contexts[device.id] = self._context(device, frozenset(zone_ids & known_zones))

    def context_by_id(self, device_id: int) -> DeviceContext | None:
        """The context of a device of this snapshot, else None."""
        return self._contexts.get(device_id)

    def context(self, device: Device) -> DeviceContext:
        """The device's context; a device newer than this snapshot gets the
        defaults and no zones until the next reload."""
        context = self._contexts.get(device.id)
        if context is None:
            context = self._contexts[device.id] = self._context(device, frozenset())
        return context

    def _context(self, device: Device, zone_ids: frozenset[int]) -> DeviceContext:
        profile = self.defaults
        group = self._groups.get(device.group_id) if device.group_id is not None else None
        for source, attributes in (("group", group.attributes if group else {}),
                                   ("device", device.attributes)):
            try:
                profile = _apply(profile, _settings(attributes), f"{source} settings")
            except SettingsError as error:
                log.warn("device {unique_id}: ignoring {error}", unique_id=device.unique_id,
                         error=error)
        return DeviceContext(device_id=device.id, organisation_id=device.organisation_id,
                             name=device.name, group_id=device.group_id, zone_ids=zone_ids,
                             profile=profile,
                             timezone=self._timezones.get(device.organisation_id, UTC_ZONE))


def _timezone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warn("unknown time zone {name!r}; using UTC", name=name)
        return UTC_ZONE


def _calendar(calendar_id: int, data: Mapping[str, Any]) -> Calendar | None:
    try:
        return Calendar.from_json(data)
    except ValueError as error:
        log.warn("calendar {id} skipped: {error}", id=calendar_id, error=error)
        return None


def _zone_rule(geofence, calendars: Mapping[int, Calendar]) -> ZoneRule | None:
    attributes = geofence.attributes
    try:
        zone = zone_from_feature(geofence.id, geofence.name, geofence.geometry)
    except ValueError as error:
        log.warn("geofence {id} skipped: {error}", id=geofence.id, error=error)
        return None
    dwell_minutes = _number(attributes.get("dwellMinutes"))
    fixes = _number(attributes.get("hysteresisFixes"))
    return ZoneRule(zone=zone, speed_limit_kn=_number(attributes.get("speedLimit")),
                    dwell_s=dwell_minutes * 60.0 if dwell_minutes else None,
                    calendar=calendars.get(geofence.calendar_id),
                    hysteresis_m=_number(attributes.get("hysteresisMeters")),
                    hysteresis_fixes=int(fixes) if fixes else None)


def _user_rule(rule):
    try:
        return parse_rule(rule.definition, rule_id=rule.id, organisation_id=rule.organisation_id,
                          name=rule.name)
    except ValueError as error:
        log.warn("rule {id} skipped: {error}", id=rule.id, error=error)
        return None


def _fix(position) -> Fix:
    return Fix(time=position.fix_time, lon=position.longitude, lat=position.latitude,
               speed_kn=position.speed_kn, course_deg=position.course_deg,
               altitude_m=position.altitude_m, accuracy_m=position.accuracy_m,
               valid=position.valid, attributes=position.attributes)


def to_events(device_id: int, happenings: Iterable[Happening],
              fix_time: dt.datetime | None = None) -> list[NewEvent]:
    """NewEvents of `happenings`; those `at_fix` are tied to the fix at `fix_time`."""
    return [NewEvent(device_id, str(h.type), h.time, dict(h.attributes),
                     fix_time if h.at_fix else None, h.geofence_id) for h in happenings]


class RuleService:
    """See the module docstring.  Every method runs on the reactor thread."""

    def __init__(self, store, reactor, threadpool, defaults: Profile = DEFAULT_PROFILE, *,
                 submit: Callable[[Batch], Any] | None = None,
                 poll_s: float = 2.0, tick_s: float = 30.0,
                 cooperator: task.Cooperator | None = None) -> None:
        self._store = store
        self._reactor = reactor
        self._threadpool = threadpool
        self._defaults = defaults
        self._submit = submit
        self._poll_s = poll_s
        self._tick_s = tick_s
        self._loops: list[task.LoopingCall] = []
        self._reloading = False
        self.book: RuleBook | None = None
        self.states: dict[int, DeviceState] = {}        # working states
        self._committed: dict[int, Mapping[str, Any]] = {}   # as last committed (JSON)
        self._in_flight: collections.Counter[int] = collections.Counter()
        self._devices: dict[int, Device] = {}
        # one tick slice per reactor turn (the default Cooperator runs slices for
        # 10 ms of wall-clock time per turn; a slice is the unit here)
        self._cooperator = cooperator or task.Cooperator(
            scheduler=lambda step: self._reactor.callLater(0, step),
            terminationPredicateFactory=lambda: lambda: True)
        self.tick_slices = 0           # for tests and the health output

    # -- lifecycle ----------------------------------------------------------------

    def load(self) -> None:
        """Blocking: read the configuration and every device's committed state (at
        start, before listening)."""
        self.use(self._store.rule_config(), self._store.rule_states())
        log.info("rules loaded: revision {revision}, {states} device states",
                 revision=self._book().revision, states=len(self.states))

    def use(self, config: RuleConfig, states: Mapping[int, Mapping[str, Any]] = {}) -> None:
        """Take this configuration and these committed states (`load`, tests)."""
        self.book = RuleBook(config, self._defaults)
        self._committed = dict(states)
        self.states = {device_id: DeviceState.from_json(state)
                       for device_id, state in states.items()}

    def start(self, submit: Callable[[Batch], Any]) -> None:
        """Start polling and ticking; `submit` hands batches to the writer."""
        self._submit = submit
        for interval, function in ((self._poll_s, self.poll), (self._tick_s, self.tick)):
            loop = task.LoopingCall(function)
            loop.clock = self._reactor
            loop.start(interval, now=False).addErrback(
                lambda failure: log.failure("rule service loop failed", failure))
            self._loops.append(loop)

    def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []

    def _book(self) -> RuleBook:
        if self.book is None:
            raise RuntimeError("the rule service has no configuration yet (call load or use)")
        return self.book

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._reactor.seconds(), dt.UTC)

    @defer.inlineCallbacks
    def poll(self):
        """Rebuild the book if the configuration revision moved."""
        if self._reloading or self.book is None:
            return
        self._reloading = True
        try:
            revision = yield self._in_thread(self._store.config_revision)
            if revision != self.book.revision:
                config = yield self._in_thread(self._store.rule_config)
                self.book = yield self._in_thread(RuleBook, config, self._defaults)
                log.info("rules reloaded: revision {revision}", revision=config.revision)
        except Exception:
            log.failure("could not reload the rule configuration; keeping the old one")
        finally:
            self._reloading = False

    def _in_thread(self, function, *args):
        return deferToThreadPool(self._reactor, self._threadpool, function, *args)

    # -- what the pipeline and the adapters call ----------------------------------

    def state(self, device: Device) -> DeviceState:
        self._devices[device.id] = device
        state = self.states.get(device.id)
        if state is None:
            state = self.states[device.id] = DeviceState()
        return state

    def is_late(self, device: Device, fix_time: dt.datetime) -> bool:
        return self.state(device).is_late(fix_time)

    def on_fix(self, device: Device, position, now: dt.datetime) -> list[NewEvent]:
        """Events of a live fix (`position` a protocols.Position); state updated."""
        book = self._book()
        happenings = book.engine.fix(book.context(device), self.state(device), _fix(position), now)
        return to_events(device.id, happenings, position.fix_time)

    def on_status(self, device: Device, attributes: Mapping[str, Any], time: dt.datetime,
                  now: dt.datetime) -> list[NewEvent]:
        """Events of a report without a fix of its own (heartbeat, invalid fix)."""
        book = self._book()
        happenings = book.engine.status(book.context(device), self.state(device), attributes, time, now)
        return to_events(device.id, happenings)

    def snapshot(self, device: Device) -> RuleState:
        """The device's working state, to commit with the batch it belongs to."""
        return self._outgoing(device.id, self.state(device))

    def _outgoing(self, device_id: int, state: DeviceState) -> RuleState:
        self._in_flight[device_id] += 1
        return RuleState(device_id, state.to_json())

    # -- what the batch writer tells (tracker.writer.BatchObserver) ----------------

    def batch_committed(self, batch: Batch) -> None:
        for state in batch.states:
            self._committed[state.device_id] = state.state
            self._landed(state.device_id)

    def batch_refused(self, batch: Batch) -> None:
        for state in batch.states:
            if self._landed(state.device_id) == 0:
                committed = self._committed.get(state.device_id)
                self.states[state.device_id] = (DeviceState.from_json(committed)
                                                if committed is not None else DeviceState())
                log.info("device {id}: rule state back to the committed one (data refused)",
                         id=state.device_id)

    def _landed(self, device_id: int) -> int:
        """One batch of the device settled; how many are still on their way."""
        left = self._in_flight[device_id] - 1
        if left > 0:
            self._in_flight[device_id] = left
        else:
            self._in_flight.pop(device_id, None)
        return max(left, 0)

    def connected(self, device: Device) -> None:
        self._presence(device, Engine.connected)

    def disconnected(self, device: Device) -> None:
        self._presence(device, Engine.disconnected)

    def _presence(self, device: Device, method) -> None:
        if self.book is None:
            return
        happenings = method(self.book.engine, self.book.context(device), self.state(device),
                            self.now())
        if happenings:
            self._commit(Batch(events=tuple(to_events(device.id, happenings)),
                               states=(self.snapshot(device),)))

    def tick(self) -> defer.Deferred | None:
        """Time-based events of every device with a state, `TICK_SLICE_DEVICES` at a
        time between reactor turns; the Deferred fires when all were visited."""
        if self.book is None:
            return None
        return self._cooperator.cooperate(self._tick_slices(self.book, self.now())).whenDone()

    def _tick_slices(self, book: RuleBook, now: dt.datetime):
        """Generator for the cooperator: one slice of devices per step."""
        device_ids = list(self.states)
        for start in range(0, len(device_ids), TICK_SLICE_DEVICES):
            events: list[NewEvent] = []
            states: list[RuleState] = []
            for device_id in device_ids[start:start + TICK_SLICE_DEVICES]:
                state = self.states.get(device_id)
                device = self._devices.get(device_id)
                context = (book.context(device) if device is not None
                           else book.context_by_id(device_id))
                if state is None or context is None:   # deleted, disabled, not seen
                    continue
                happenings = book.engine.tick(context, state, now)
                if happenings:
                    events.extend(to_events(device_id, happenings))
                    states.append(self._outgoing(device_id, state))
            if events:
                self._commit(Batch(events=tuple(events), states=tuple(states)))
            self.tick_slices += 1
            yield None

    def _commit(self, batch: Batch) -> None:
        if self._submit is None:
            return
        d = defer.maybeDeferred(self._submit, batch)
        d.addErrback(lambda failure: log.failure("could not store rule events", failure))
