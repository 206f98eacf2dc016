"""The rule engine in the server: thresholds, presence, ticks, reloads and restarts."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols import Position
from tests.tracker.doubles import FakeReactor, SyncThreadPool, rule_config, rule_service
from tracker.models import Device, Geofence, Group
from tracker.pipeline import build_batch
from tracker.rules import RuleBook, RuleService, SettingsError, profile_defaults
from tracker.storage import SqlStore

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
KMH_PER_KNOT = 1.852
SQUARE = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
    [13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]]}}


def clock() -> FakeReactor:
    reactor = FakeReactor()
    reactor.advance(NOW.timestamp())
    return reactor


def device(device_id=7, group_id=None, **settings) -> Device:
    return Device(id=device_id, unique_id=f"imei{device_id}", name="van", organisation_id=1,
                  group_id=group_id, attributes=settings)


def fix(seconds: float, lon: float, lat: float = 52.05, speed_kn: float = 0.0, **attributes):
    return Position(fix_time=NOW + dt.timedelta(seconds=seconds), valid=True, latitude=lat,
                    longitude=lon, speed_kn=speed_kn, attributes=attributes)


def test_thresholds_resolve_device_over_group_over_server_defaults():
    defaults = profile_defaults({"speed_limit_kn": 60.0, "idle_after_s": 900})
    config = rule_config(
        devices=(device(1, group_id=5), device(2, group_id=5, speedLimit=30.0), device(3)),
        groups=(Group(5, 1, "vans", {"speedLimit": 45.0, "idleMinimalDuration": 120}),))
    book = RuleBook(config, defaults)
    in_group, own_limit, alone = (book.context_by_id(i).profile for i in (1, 2, 3))
    assert (in_group.speed_limit_kn, in_group.idle_after_s) == (45.0, 120.0)
    assert (own_limit.speed_limit_kn, own_limit.idle_after_s) == (30.0, 120.0)
    assert (alone.speed_limit_kn, alone.idle_after_s) == (60.0, 900.0)


def test_a_bad_stored_setting_is_ignored_not_fatal():
    book = RuleBook(rule_config(devices=(device(1, speedLimit="fast"),)), profile_defaults({}))
    assert book.context_by_id(1).profile.speed_limit_kn is None


def test_unknown_or_bad_defaults_are_refused():
    with pytest.raises(SettingsError, match="unknown setting"):
        profile_defaults({"speed_limit": 50})
    with pytest.raises(SettingsError, match="must be a number"):
        profile_defaults({"speed_limit_kn": "50"})


def test_zones_reach_a_device_directly_or_through_its_group():
    zones = tuple(Geofence(i, 1, f"z{i}", SQUARE) for i in (10, 11, 12))
    config = rule_config(devices=(device(1, group_id=5), device(2)), groups=(Group(5, 1, "g"),),
                         geofences=zones, device_geofences=((1, 10), (2, 12)),
                         group_geofences=((5, 11),))
    book = RuleBook(config, profile_defaults({}))
    assert book.context_by_id(1).zone_ids == {10, 11}
    assert book.context_by_id(2).zone_ids == {12}


def test_a_stored_zone_that_does_not_parse_is_skipped():
    broken = Geofence(10, 1, "broken", {"type": "Feature", "properties": {},
                                        "geometry": {"type": "Polygon", "coordinates": []}})
    config = rule_config(devices=(device(1),), geofences=(broken, Geofence(11, 1, "ok", SQUARE)),
                         device_geofences=((1, 10), (1, 11)))
    assert RuleBook(config, profile_defaults({})).context_by_id(1).zone_ids == {11}


def test_enter_and_exit_become_events_tied_to_their_fixes():
    van = device(1)
    config = rule_config(devices=(van,), geofences=(Geofence(10, 1, "yard", SQUARE),),
                         device_geofences=((1, 10),))
    rules = rule_service(config=config)
    outside = build_batch(van, "gt06", [fix(0, 12.9)], rules, NOW)
    inside = build_batch(van, "gt06", [fix(10, 13.05)], rules, NOW)
    left = build_batch(van, "gt06", [fix(20, 13.2)], rules, NOW)
    assert "geofenceEnter" not in [e.type for e in outside.events]
    (enter,) = [e for e in inside.events if e.type == "geofenceEnter"]
    (leave,) = [e for e in left.events if e.type == "geofenceExit"]
    assert (enter.geofence_id, enter.fix_time) == (10, NOW + dt.timedelta(seconds=10))
    assert (leave.geofence_id, leave.fix_time) == (10, NOW + dt.timedelta(seconds=20))


class Collect:
    def __init__(self):
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch)

    def types(self):
        return [e.type for b in self.batches for e in b.events]


def test_connections_report_online_and_offline_with_the_state():
    reactor = clock()
    rules = RuleService(store=None, reactor=reactor, threadpool=None)
    rules.use(rule_config(devices=(device(1),)))
    sink = Collect()
    rules.start(sink)
    try:
        rules.connected(device(1))
        rules.connected(device(1))          # a second connection: still online
        rules.disconnected(device(1))
        assert sink.types() == ["deviceOnline", "deviceOffline"]
        assert all(b.states and b.states[0].device_id == 1 for b in sink.batches)
    finally:
        rules.stop()


def test_the_tick_marks_a_silent_device_unknown():
    reactor = clock()
    rules = RuleService(store=None, reactor=reactor, threadpool=None,
                        defaults=profile_defaults({"status_timeout_s": 120}), tick_s=30)
    rules.use(rule_config(devices=(device(1),)))
    sink = Collect()
    rules.start(sink)
    try:
        build_batch(device(1), "osmand", [fix(0, 12.0)], rules, NOW)
        reactor.advance(90)
        assert "deviceUnknown" not in sink.types()
        reactor.advance(60)
        assert sink.types().count("deviceUnknown") == 1
        reactor.advance(600)
        assert sink.types().count("deviceUnknown") == 1
    finally:
        rules.stop()


@pytest.fixture
def sqlite_store(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    yield store
    store.close()


def _service(store) -> RuleService:
    service = RuleService(store, clock(), SyncThreadPool())
    service.load()
    return service


def test_a_restart_resumes_from_the_committed_state(sqlite_store):
    van = sqlite_store.add_device("imei1", "van")
    zone = sqlite_store.add_geofence(None, "yard", SQUARE)
    sqlite_store.link_geofence(None, zone.id, device_id=van.id)
    van = sqlite_store.device_by_unique_id("imei1")

    before = _service(sqlite_store)
    sqlite_store.write_batch(build_batch(van, "gt06", [fix(0, 13.05)], before, NOW))
    after = _service(sqlite_store)                    # a new process: state from the database
    again = build_batch(van, "gt06", [fix(10, 13.06)], after, NOW)
    out = build_batch(van, "gt06", [fix(20, 13.5)], after, NOW)
    assert "geofenceEnter" not in [e.type for e in again.events]
    assert [e.type for e in out.events if e.type.startswith("geofence")] == ["geofenceExit"]
    late = build_batch(van, "gt06", [fix(5, 13.05)], after, NOW)   # history upload
    assert late.positions[0].archive and late.events == ()


def test_a_configuration_change_is_picked_up_by_the_poll(sqlite_store):
    van = sqlite_store.add_device("imei1", "van")
    service = _service(sqlite_store)
    assert service.book.context_by_id(van.id).zone_ids == frozenset()
    zone = sqlite_store.add_geofence(None, "yard", SQUARE)
    sqlite_store.link_geofence(None, zone.id, device_id=van.id)
    service.poll()
    assert service.book.context_by_id(van.id).zone_ids == {zone.id}
    assert service.book.revision == sqlite_store.config_revision()


# -- state adopted only once committed (hardening finding 10) -------------------------

def _yard_service():
    van = device(1)
    config = rule_config(devices=(van,), geofences=(Geofence(10, 1, "yard", SQUARE),),
                         device_geofences=((1, 10),))
    return van, rule_service(config=config)


def _types(batch):
    return [e.type for e in batch.events if e.type.startswith("geofence")]


def test_a_refused_batch_fires_its_events_again_from_the_next_report():
    van, rules = _yard_service()
    rules.batch_committed(build_batch(van, "gt06", [fix(0, 12.9)], rules, NOW))
    entered = build_batch(van, "gt06", [fix(10, 13.05)], rules, NOW)
    assert _types(entered) == ["geofenceEnter"]
    rules.batch_refused(entered)                 # quarantined or writer overloaded
    again = build_batch(van, "gt06", [fix(20, 13.06)], rules, NOW)
    assert _types(again) == ["geofenceEnter"], "the enter was never stored: it fires again"
    rules.batch_committed(again)
    later = build_batch(van, "gt06", [fix(30, 13.07)], rules, NOW)
    assert _types(later) == [], "once committed, the enter is not repeated"


def test_a_refused_batch_of_a_device_never_committed_goes_back_to_a_fresh_state():
    van, rules = _yard_service()
    entered = build_batch(van, "gt06", [fix(10, 13.05)], rules, NOW)
    assert _types(entered) == ["geofenceEnter"]
    rules.batch_refused(entered)
    assert _types(build_batch(van, "gt06", [fix(20, 13.06)], rules, NOW)) == ["geofenceEnter"]


def test_a_refused_batch_keeps_the_state_that_later_batches_in_flight_carry():
    van, rules = _yard_service()
    rules.batch_committed(build_batch(van, "gt06", [fix(0, 12.9)], rules, NOW))
    entered = build_batch(van, "gt06", [fix(10, 13.05)], rules, NOW)
    inside = build_batch(van, "gt06", [fix(20, 13.06)], rules, NOW)   # still on its way
    rules.batch_refused(entered)
    rules.batch_committed(inside)
    assert _types(build_batch(van, "gt06", [fix(30, 13.07)], rules, NOW)) == []


def test_the_writer_tells_the_rule_service_and_a_quarantined_enter_fires_again():
    """Through the real writer: the enter's batch is refused for good (quarantined),
    the next report's enter is stored."""
    import threading

    from sqlalchemy.exc import DataError

    from tracker.storage import errors
    from tracker.writer import BatchWriter

    class Store:
        """Refuses for good whatever holds an event of the fix at 10 s."""

        def __init__(self):
            self.events = []
            self.written = threading.Event()

        def write_batch(self, batch):
            if any(e.fix_time == NOW + dt.timedelta(seconds=10) for e in batch.events):
                raise DataError("INSERT", {}, Exception("invalid input"))
            self.events += [e.type for e in batch.events]
            self.written.set()

        def write_quarantine(self, entries):
            pass

        is_transient = staticmethod(errors.is_transient)
        describe = staticmethod(errors.describe)

    van, rules = _yard_service()
    store = Store()
    writer = BatchWriter(store, FakeReactor(), max_delay_s=0.0)
    writer.observers.append(rules)
    writer.start()
    refused = threading.Event()
    d = writer.submit(build_batch(van, "gt06", [fix(10, 13.05)], rules, NOW))
    d.addErrback(lambda failure: refused.set())
    assert refused.wait(5), "the enter's batch was refused"
    writer.submit(build_batch(van, "gt06", [fix(20, 13.06)], rules, NOW))
    assert store.written.wait(5)
    assert "geofenceEnter" in store.events, "the enter fired again and was stored"


def test_the_rule_book_is_rebuilt_on_the_thread_pool_not_the_reactor(sqlite_store):
    class RecordingPool(SyncThreadPool):
        def __init__(self):
            self.functions = []

        def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
            self.functions.append(getattr(f, "__name__", f))
            super().callInThreadWithCallback(on_result, f, *args, **kwargs)

    pool = RecordingPool()
    service = RuleService(sqlite_store, clock(), pool)
    service.load()
    sqlite_store.add_device("imei1", "van")          # bumps the configuration revision
    pool.functions.clear()
    service.poll()
    assert "RuleBook" in pool.functions
    assert service.book.revision == sqlite_store.config_revision()


def test_the_tick_walks_many_devices_in_slices_between_reactor_turns():
    from twisted.internet import task

    from tracker.rules import TICK_SLICE_DEVICES

    reactor = clock()
    steps = []
    cooperator = task.Cooperator(scheduler=steps.append,
                                 terminationPredicateFactory=lambda: lambda: True)
    devices = [device(i) for i in range(1, 10_001)]
    rules = RuleService(store=None, reactor=reactor, threadpool=None, cooperator=cooperator,
                        defaults=profile_defaults({"status_timeout_s": 60}))
    rules.use(rule_config(devices=tuple(devices)))
    sink = Collect()
    rules._submit = sink
    for van in devices:
        build_batch(van, "osmand", [fix(0, 12.0)], rules, NOW)
    reactor.advance(120)
    done = []
    rules.tick().addCallback(done.append)
    per_turn = []
    while steps:
        before = rules.tick_slices
        steps.pop(0)()                                 # one reactor turn
        per_turn.append(rules.tick_slices - before)
    assert done, "the tick finished"
    assert max(per_turn) == 1, "at most one slice per reactor turn"
    assert rules.tick_slices == 10_000 // TICK_SLICE_DEVICES
    assert sink.types().count("deviceUnknown") == 10_000
    assert len(sink.batches) == 10_000 // TICK_SLICE_DEVICES, "each slice commits its own"
