"""DeviceDirectory under an unknown-device flood: negative cache, rate limits,
batched bookkeeping off the database pool, counters and rate-limited log lines."""

from __future__ import annotations

import queue
import threading

from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from tests.tracker.doubles import EPOCH, FakeReactor, MemoryDevices, SyncThreadPool
from tracker.devices import DeviceDirectory

HANG_S = 10.0   # generous bound for a thread to answer (hang detection only)


class CountingStore(MemoryDevices):
    """MemoryDevices that counts lookups and keeps each batch write with its thread."""

    def __init__(self, *unique_ids):
        super().__init__(*unique_ids)
        self.lookups = 0
        self.batches: list[tuple[list, int, str]] = []   # (attempts, max_rows, thread name)
        self.written = threading.Event()

    def device_by_unique_id(self, unique_id):
        self.lookups += 1
        return super().device_by_unique_id(unique_id)

    def record_unknown_device(self, attempt):
        raise AssertionError("attempts are written in batches")

    def record_unknown_devices(self, attempts, max_rows):
        self.batches.append((list(attempts), max_rows, threading.current_thread().name))
        self.unknown.extend(attempts)
        del self.unknown[:-max_rows]
        self.written.set()


class RecordingPool(SyncThreadPool):
    """The database pool: runs at once and remembers which functions it ran."""

    def __init__(self):
        self.ran = []

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        self.ran.append(getattr(f, "__name__", repr(f)))
        super().callInThreadWithCallback(on_result, f, *args, **kwargs)


class QueueReactor(Clock):
    """A Clock whose callFromThread queues the call for the test thread (`drain`)."""

    def __init__(self):
        super().__init__()
        self.from_threads: queue.Queue = queue.Queue()

    def callFromThread(self, f, *args, **kwargs):
        self.from_threads.put((f, args, kwargs))

    def drain(self, count: int = 1) -> None:
        for _ in range(count):
            f, args, kwargs = self.from_threads.get(timeout=HANG_S)
            f(*args, **kwargs)


def make_directory(*known, reactor=None, policy="refuse", own_thread=False, **options):
    reactor = reactor if reactor is not None else FakeReactor()
    if reactor.seconds() == 0:
        reactor.advance(EPOCH.timestamp())
    store = CountingStore(*known)
    pool = RecordingPool()
    if not own_thread:
        options.setdefault("bookkeeping_threadpool", SyncThreadPool())
    directory = DeviceDirectory(store, reactor, pool, policy, **options)
    return reactor, store, pool, directory


def identify(directory, unique_id, remote="10.0.0.9:40000"):
    result = []
    directory.identify(unique_id, "line", remote).addCallback(result.append)
    reactor = directory._reactor
    if not result and isinstance(reactor, QueueReactor):   # the lookup's answer is queued
        reactor.drain()
    assert len(result) == 1, "the test doubles answer at once"
    return result[0]


# -- negative cache -----------------------------------------------------------------


def test_a_refused_id_costs_no_store_call_again_within_the_ttl():
    reactor, store, _, directory = make_directory(refused_cache_s=60)
    assert identify(directory, "stranger") is None
    assert store.lookups == 1
    for _ in range(10):
        assert identify(directory, "stranger", remote="10.0.0.7:1") is None
    assert store.lookups == 1
    assert directory.refused_unknown == 11
    directory.flush()
    assert len(store.unknown) == 1            # the repeats are not recorded either
    reactor.advance(60)
    assert identify(directory, "stranger") is None
    assert store.lookups == 2                 # TTL over: looked up again


def test_a_device_registered_after_a_refusal_is_accepted_once_the_ttl_is_over():
    reactor, store, _, directory = make_directory(refused_cache_s=60)
    assert identify(directory, "late") is None
    store.add_device("late", "Late")
    assert identify(directory, "late") is None
    reactor.advance(61)
    assert identify(directory, "late").unique_id == "late"


def test_a_known_device_is_cached_and_never_charged():
    _, store, _, directory = make_directory("dev1", unknown_rate_per_source=1,
                                            unknown_rate_global=1)
    for _ in range(5):
        assert identify(directory, "dev1").unique_id == "dev1"
    assert store.lookups == 1
    assert identify(directory, "u1") is None          # the one token is still there
    assert store.lookups == 2


# -- rate limits ----------------------------------------------------------------------


def test_per_source_rate_refuses_new_unknown_ids_without_a_lookup():
    reactor, store, _, directory = make_directory(unknown_rate_per_source=2,
                                                  unknown_rate_global=100)
    assert identify(directory, "u1") is None and identify(directory, "u2") is None
    assert store.lookups == 2
    assert identify(directory, "u3", remote="10.0.0.9:40001") is None   # same host, other port
    assert store.lookups == 2 and directory.rate_limited_unknown == 1
    assert identify(directory, "u4", remote="10.0.0.10:40000") is None  # another source
    assert store.lookups == 3
    reactor.advance(0.49)
    identify(directory, "u5")
    assert store.lookups == 3                 # 0.98 of a token
    reactor.advance(0.02)
    identify(directory, "u6")
    assert store.lookups == 4                 # 2 per second: one token after 0.5 s
    assert directory.rate_limited_unknown == 2


def test_global_rate_holds_across_sources():
    reactor, store, _, directory = make_directory(unknown_rate_per_source=100,
                                                  unknown_rate_global=3)
    for i in range(10):
        identify(directory, f"u{i}", remote=f"10.1.0.{i}:5000")
    assert store.lookups == 3 and directory.rate_limited_unknown == 7
    reactor.advance(0.34)                     # a third of a second: one token
    identify(directory, "later", remote="10.2.0.1:5000")
    assert store.lookups == 4


def test_rate_limited_ids_are_not_negatively_cached():
    """A refusal by rate is no verdict on the id: it is looked up once tokens are back."""
    reactor, store, _, directory = make_directory("dev9", unknown_rate_per_source=1)
    identify(directory, "u1")
    assert identify(directory, "dev9") is None and store.lookups == 1
    reactor.advance(1)
    assert identify(directory, "dev9").unique_id == "dev9"


def test_a_device_known_before_is_looked_up_even_during_a_flood():
    """Its cache entry expired, the buckets are empty: it is still looked up."""
    reactor, store, _, directory = make_directory(
        "dev1", "dev2", cache_s=0.5, unknown_rate_per_source=0.01, unknown_rate_global=0.01)
    assert identify(directory, "dev1") is not None
    identify(directory, "flood1")              # takes the only token
    reactor.advance(1)                         # dev1's cache entry expires
    lookups = store.lookups
    assert identify(directory, "dev1").unique_id == "dev1"
    assert store.lookups == lookups + 1
    assert identify(directory, "dev2") is None          # never seen since start: limited
    assert store.lookups == lookups + 1


def test_source_buckets_are_bounded(monkeypatch):
    import tracker.devices
    monkeypatch.setattr(tracker.devices, "REMOTE_SOURCES_MAX", 4)
    _, _, _, directory = make_directory()
    for i in range(20):
        identify(directory, f"u{i}", remote=f"10.3.0.{i}:1")
    assert len(directory._sources) == 4


def test_the_negative_cache_is_bounded(monkeypatch):
    import tracker.devices
    monkeypatch.setattr(tracker.devices, "REFUSED_MAX", 5)
    _, _, _, directory = make_directory(unknown_rate_per_source=100, unknown_rate_global=100)
    for i in range(20):
        identify(directory, f"u{i}")
    assert len(directory._refused) == 5 and "u19" in directory._refused


# -- register policy ------------------------------------------------------------------


def test_register_policy_registers_charges_and_records():
    _, store, pool, directory = make_directory(policy="register", unknown_rate_per_source=1)
    device = identify(directory, "newcomer")
    assert device.unique_id == "newcomer" and "newcomer" in store.devices
    assert identify(directory, "newcomer") == device                   # cached
    assert identify(directory, "second") is None                       # rate: 1 per second
    assert "second" not in store.devices and directory.rate_limited_unknown == 1
    directory.flush()
    assert [a.unique_id for a in store.unknown] == ["newcomer"]
    assert pool.ran == ["_lookup"]             # registration on the lookup path


# -- bookkeeping ------------------------------------------------------------------------


def test_attempts_are_written_in_one_batch_per_interval_on_the_bookkeeping_thread():
    reactor = QueueReactor()
    reactor.advance(EPOCH.timestamp())
    _, store, pool, directory = make_directory(
        reactor=reactor, own_thread=True, unknown_rate_per_source=1000,
        unknown_rate_global=1000, bookkeeping_interval_s=1.0, unknown_max_rows=500)
    directory.start()
    try:
        for i in range(20):
            identify(directory, f"u{i}")
        assert store.batches == []             # nothing written per attempt
        reactor.advance(1.0)                   # the interval: one write
        assert store.written.wait(HANG_S)
        reactor.drain()
        (attempts, max_rows, thread), = store.batches
        assert [a.unique_id for a in attempts] == [f"u{i}" for i in range(20)]
        assert max_rows == 500
        assert thread.startswith("PoolThread-unknown-devices")
        assert thread != threading.current_thread().name
        assert "record_unknown_devices" not in pool.ran     # not the API/database pool
        assert set(pool.ran) == {"_lookup"}
        assert directory.recorded_unknown == 20
        reactor.advance(5.0)                   # nothing pending: no empty writes
        assert len(store.batches) == 1
        store.written.clear()
        identify(directory, "last")
    finally:
        stopped = []
        directory.stop().addBoth(stopped.append)
    assert store.written.wait(HANG_S)          # stop writes what is pending
    reactor.drain()
    assert stopped == [None]
    assert [a.unique_id for a in store.batches[-1][0]] == ["last"]
    assert directory.recorded_unknown == 21
    assert not directory._bookkeeping.started


def test_stop_without_start_is_safe():
    _, store, _, directory = make_directory(own_thread=True)
    identify(directory, "u1")
    fired = []
    directory.stop().addCallback(fired.append)
    directory.stop().addCallback(fired.append)
    assert fired == [None, None] and store.batches == []


def test_pending_attempts_are_bounded_by_the_table_bound():
    _, store, _, directory = make_directory(unknown_max_rows=3, unknown_rate_per_source=100,
                                            unknown_rate_global=100)
    for i in range(5):
        identify(directory, f"u{i}")
    assert directory.dropped_unknown == 2
    directory.flush()
    assert [a.unique_id for a in store.unknown] == ["u2", "u3", "u4"]


def test_a_failed_write_is_logged_and_dropped():
    _, store, _, directory = make_directory()

    def broken(attempts, max_rows):
        raise ConnectionError("database down")
    store.record_unknown_devices = broken
    identify(directory, "u1")
    with capturedLogs() as events:
        directory.flush()
    assert directory.dropped_unknown == 1 and directory.recorded_unknown == 0
    assert any("not recorded" in str(e.get("log_format")) for e in events)
    assert directory._pending == []


# -- log lines ------------------------------------------------------------------------------


def test_refusal_log_lines_are_rate_limited_per_source():
    _, _, _, directory = make_directory(unknown_rate_per_source=1000, unknown_rate_global=1000)
    with capturedLogs() as events:
        for i in range(200):
            identify(directory, f"u{i}")
        identify(directory, "other", remote="10.9.9.9:1")
    refused = [e for e in events if "refused unknown device" in str(e.get("log_format"))]
    assert len(refused) == directory.limited_log.lines_per_window + 1
    assert refused[-1]["remote"] == "10.9.9.9:1"
    assert directory.refused_unknown == 201


# -- ids no database can hold -----------------------------------------------------------


def test_impossible_ids_are_refused_without_a_lookup_even_when_registering():
    from tracker.devices import MAX_UNIQUE_ID_CHARS
    from tracker.storage.schema import devices
    assert MAX_UNIQUE_ID_CHARS == devices.c.unique_id.type.length
    _, store, pool, directory = make_directory(policy="register", unknown_rate_per_source=100,
                                               unknown_rate_global=100)
    for unique_id in ("", "8" * 129, "86\x00123", "86\ud800"):
        assert identify(directory, unique_id) is None
    assert store.lookups == 0 and pool.ran == [] and store.devices == {}
    assert directory.refused_unknown == 4
    assert identify(directory, "8" * 128).unique_id == "8" * 128    # the longest possible
    directory.flush()
    assert len(store.unknown) == 5            # recorded (the store escapes the text)


def test_impossible_ids_count_against_the_rate():
    _, _, _, directory = make_directory(unknown_rate_per_source=2, unknown_rate_global=100)
    for i in range(5):
        identify(directory, f"bad\x00{i}")
    assert directory.refused_unknown == 2 and directory.rate_limited_unknown == 3
